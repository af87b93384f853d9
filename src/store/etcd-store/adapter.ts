/**
 * The store on an etcd v3 cluster, through npm `etcd3`.
 *
 * - create = txn `if version(key) == 0 then put`; compare-and-swap = txn
 *   `if mod(key) == expected then put`; a checked delete likewise;
 *   putIfUnchanged = txn `if mod(k1) == r1 and ... then put ... delete ...`.
 * - Every call has a deadline (3 s by default); an etcd that does not answer
 *   rejects with StoreUnavailableError naming "etcd at HOST:PORT", one that
 *   answers with a refusal (a request too large, a full database) with
 *   StoreRefusedError. Every error of grpc or etcd is converted here, so
 *   nothing above sees them.
 * - No automatic retries of calls that may have reached etcd: a txn retried
 *   after a lost reply would report a create it made itself as lost. Only
 *   calls that never left (no connection) move on to the next endpoint.
 * - A list reads pages of at most 1,000 keys, all at one revision: a cluster
 *   of any size lists without a reply near grpc's 4 MiB limit.
 * - A watch ends with onReset when etcd cancels it (its start revision was
 *   compacted) or the stream to etcd breaks; the caller lists again.
 * - Leases are kept alive by the library; 'lost' becomes onLost.
 * - With `tls` it speaks TLS (a client certificate if given), with `auth` it logs in;
 *   what etcd or the handshake refuses becomes StoreTlsError or StoreAuthError
 *   naming what to fix, never "unavailable": waiting would not help.
 *
 * One file: every etcd call ends in the one convert(), so no grpc or etcd
 * error gets past it untranslated.
 */
import { rootCertificates } from 'node:tls';
import { circuitBreaker, ConsecutiveBreaker, ConstantBackoff, handleWhen, isBrokenCircuitError, noop, retry } from 'cockatiel';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  isRecoverableError,
  Range,
  type IRangeResponse,
  type Lease as EtcdLeaseHandle,
  type PutBuilder,
} from 'etcd3';
import { SluiceError, StoreRefusedError, StoreTlsError, StoreUnavailableError } from '../../errors';
import { HeldLease, validateTtl } from '../held-lease';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchHandlers } from '../store';
import { DEFAULT_ETCD_TIMEOUT_MS, type EtcdStoreOptions } from './options';
import { isUnavailability, neverSent, refusal } from './refusals';
import { EtcdWatch, toKeyValue } from './watch';

/** Keys per page of a list: records of ~400 bytes make pages of ~0.5 MB. */
const LIST_PAGE_KEYS = 1000;
/** Fresh starts of a list whose revision etcd keeps compacting away, before giving up. */
const LIST_ATTEMPTS = 3;

/** Our own deadline, a little after grpc's, for anything grpc's does not cover (e.g. waiting on a lease grant). */
class DeadlineError extends Error {}

export class EtcdStore implements Store {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly timeoutMs: number;
  private readonly options: EtcdStoreOptions;
  /** The last failed handshake: grpc reports later calls, while it waits to reconnect, without the reason. */
  private tlsFailure: string | undefined;
  private readonly leases = new Set<EtcdLease>();
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new Error('EtcdStore needs at least one endpoint');
    this.description = `etcd at ${options.endpoints.join(',')}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    this.options = options;
    const several = options.endpoints.length > 1;
    const { tls, auth } = options;
    this.client = new Etcd3({
      hosts: options.endpoints.map((endpoint) => `${tls ? 'https' : 'http'}://${endpoint}`),
      ...(tls && {
        credentials: { rootCertificate: tls.ca ?? Buffer.from(rootCertificates.join('\n')), privateKey: tls.key, certChain: tls.cert },
      }),
      ...(auth && { auth }),
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      faultHandling: {
        // Retry on another member only a call that never reached one.
        global: several
          ? retry(handleWhen(neverSent), { maxAttempts: options.endpoints.length - 1 })
          : noop,
        // With several members, skip a dead one for a second; with one there is nothing to skip to.
        host: () =>
          several
            ? circuitBreaker(handleWhen(isUnavailability), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(1) })
            : noop,
        // Watches do not outlive a broken stream (onReset), so this only paces the library's own retry.
        watchBackoff: new ConstantBackoff(500).next(),
      },
      // Reconnect within a second once etcd is back, not after grpc's default of up to two minutes.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    });
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.call(`read ${key}`, undefined, async () => {
      const res = await this.client.get(key).exec();
      const kv = res.kvs[0];
      return kv && toKeyValue(kv);
    });
  }

  /**
   * In pages of at most LIST_PAGE_KEYS keys, each after the last key of the one before, every page
   * at the first page's revision: one consistent snapshot, and no reply near grpc's 4 MiB limit
   * (a page that is over it anyway, big values, is asked again with half as many keys). If etcd
   * compacts that revision away meanwhile, the list starts over at a new one.
   */
  async list(prefix: string): Promise<ListResult> {
    const what = `list ${prefix}`;
    const range = Range.prefix(prefix);
    let kvs: KeyValue[] = [];
    let revision: string | undefined;
    let from = range.start;
    let limit = LIST_PAGE_KEYS;
    let compactions = 0;
    for (;;) {
      const page = await this.call(what, undefined, () => this.listPage(new Range(from, range.end), limit, revision));
      if (page === 'compacted') {
        if (++compactions === LIST_ATTEMPTS) {
          throw new StoreUnavailableError(`${this.description} could not ${what}: its history was compacted during each of ${LIST_ATTEMPTS} attempts`);
        }
        [kvs, revision, from] = [[], undefined, range.start];
        continue;
      }
      if (page === 'too large') {
        limit = Math.ceil(limit / 2);
        continue;
      }
      revision ??= page.header.revision;
      kvs.push(...page.kvs.map(toKeyValue));
      const last = page.kvs.at(-1);
      if (!page.more || !last) return { kvs, revision: Number(revision) };
      from = Buffer.concat([last.key, Buffer.from([0])]); // the next key after the last one
    }
  }

  /** One page of a list; at `revision` unless it is the first. */
  private async listPage(range: Range, limit: number, revision: string | undefined): Promise<IRangeResponse | 'compacted' | 'too large'> {
    const builder = this.client.getAll().inRange(range).sort('Key', 'Ascend').limit(limit);
    if (revision !== undefined) builder.revision(revision);
    try {
      return await builder.exec();
    } catch (err) {
      if (revision !== undefined && err instanceof Error && /required revision has been compacted/.test(err.message)) return 'compacted';
      if (limit > 1 && err instanceof Error && /Received message larger than max/.test(err.message)) return 'too large';
      throw err;
    }
  }

  create(key: string, value: string, lease?: Lease): Promise<number | undefined> {
    return this.call(`create ${key}`, lease, async () => {
      const res = await this.client.if(key, 'Version', '==', 0).then(this.putOp(key, value, lease)).commit();
      // The transaction's revision is the one its put wrote.
      return res.succeeded ? Number(res.header.revision) : undefined;
    });
  }

  compareAndSwap(key: string, value: string, expectedModRevision: number, lease?: Lease): Promise<boolean> {
    return this.call(`update ${key}`, lease, async () => {
      const res = await this.client
        .if(key, 'Mod', '==', expectedModRevision)
        .then(this.putOp(key, value, lease))
        .commit();
      return res.succeeded;
    });
  }

  put(key: string, value: string, lease?: Lease): Promise<void> {
    return this.call(`write ${key}`, lease, async () => {
      await this.putOp(key, value, lease).exec();
    });
  }

  putIfUnchanged(
    expect: readonly [Unchanged, ...Unchanged[]],
    puts: readonly { key: string; value: string }[],
    deletes: readonly string[] = [],
  ): Promise<boolean> {
    return this.call(`write ${[...puts.map((p) => p.key), ...deletes].join(', ')}`, undefined, async () => {
      const [first, ...rest] = expect;
      const txn = this.client.if(first.key, 'Mod', '==', first.modRevision);
      for (const { key, modRevision } of rest) txn.and(key, 'Mod', '==', modRevision);
      const ops = [
        ...puts.map(({ key, value }) => this.putOp(key, value, undefined)),
        ...deletes.map((key) => this.client.delete().key(key)),
      ];
      const res = await txn.then(...ops).commit();
      return res.succeeded;
    });
  }

  delete(key: string, expectedModRevision?: number): Promise<boolean> {
    return this.call(`delete ${key}`, undefined, async () => {
      if (expectedModRevision === undefined) {
        const res = await this.client.delete().key(key).exec();
        return Number(res.deleted) > 0;
      }
      const res = await this.client
        .if(key, 'Mod', '==', expectedModRevision)
        .then(this.client.delete().key(key))
        .commit();
      // An absent key has mod 0: "deleted" only if something was there.
      return res.succeeded && Number(res.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
    });
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    if (this.closed) throw this.closedError();
    const builder = this.client.watch().prefix(prefix);
    if (fromRevision >= 1) builder.startRevision(String(fromRevision));
    const watch = new EtcdWatch(builder.watcher(), fromRevision, handlers, this.description, this.timeoutMs, {
      refusal: (err) => this.refusal(err, `watch ${prefix}`),
      closed: () => this.watches.delete(watch),
    });
    this.watches.add(watch);
    return watch;
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    validateTtl(ttlSeconds);
    if (this.closed) throw this.closedError();
    const handle = this.client.lease(ttlSeconds);
    let lease: EtcdLease | undefined;
    handle.on('lost', () => {
      if (!lease) return; // a failed grant: the call below rejects
      this.leases.delete(lease);
      lease.markLost();
    });
    try {
      const id = await this.call('grant a lease', undefined, () => handle.grant());
      lease = new EtcdLease(id, handle, (l) => this.revoke(l));
      this.leases.add(lease);
      return lease;
    } catch (err) {
      handle.release();
      throw err;
    }
  }

  /** Ends the watches and stops keeping leases alive (they expire after their TTL); frees every handle. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((watch) => watch.close()));
    for (const lease of this.leases) lease.handle.release();
    this.leases.clear();
    this.client.close();
  }

  private async revoke(lease: EtcdLease): Promise<void> {
    this.leases.delete(lease);
    await this.call(`revoke lease ${lease.id}`, undefined, () => lease.handle.revoke());
  }

  private putOp(key: string, value: string, lease: Lease | undefined): PutBuilder {
    const put = this.client.put(key).value(value);
    return lease ? put.lease(lease.id) : put;
  }

  /** Runs one call with a deadline and converts whatever it throws. */
  private async call<T>(what: string, lease: Lease | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.closedError();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError('no answer')), this.timeoutMs + 250);
    });
    try {
      const result = await Promise.race([fn(), deadline]);
      this.tlsFailure = undefined;
      return result;
    } catch (err) {
      throw this.convert(err, what, lease);
    } finally {
      clearTimeout(timer);
    }
  }

  private convert(err: unknown, what: string, lease: Lease | undefined): Error {
    if (err instanceof SluiceError) return err;
    if (err instanceof EtcdLeaseInvalidError) {
      if (lease instanceof EtcdLease && this.leases.delete(lease)) {
        lease.handle.release();
        lease.markLost();
      }
      return new StoreUnavailableError(
        `${this.description} could not ${what}: the lease has expired or was revoked: grant a new lease and write again`,
      );
    }
    if (!(err instanceof Error)) return new StoreUnavailableError(`${this.description} could not ${what}: ${String(err)}`);
    const refused = this.refusal(err, what);
    if (refused) return refused;
    if (err instanceof DeadlineError || isBrokenCircuitError(err) || isUnavailability(err)) {
      return new StoreUnavailableError(
        `${this.description} did not answer within ${this.timeoutMs / 1000}s: is etcd running? (${what}: ${err.message})`,
      );
    }
    // It answered: retrying the same request will not help, so do not say it is down.
    const tooLarge = /too large|larger than max/i.test(err.message) ? ' (the request is larger than etcd accepts: see its --max-request-bytes)' : '';
    return new StoreRefusedError(`${this.description} refused to ${what}${tooLarge}: ${err.message}`);
  }

  private refusal(err: Error, what: string): SluiceError | undefined {
    const refused = refusal(err, this.description, what, this.options);
    if (refused instanceof StoreTlsError) this.tlsFailure = refused.message;
    if (!refused && this.tlsFailure !== undefined && isRecoverableError(err)) return new StoreTlsError(this.tlsFailure);
    return refused;
  }

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(`${this.description}: the store is closed: open it again`);
  }
}

class EtcdLease extends HeldLease<EtcdLease> {
  constructor(
    id: string,
    readonly handle: EtcdLeaseHandle,
    revokeFn: (lease: EtcdLease) => Promise<void>,
  ) {
    super(id, revokeFn);
  }
}
