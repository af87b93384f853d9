/**
 * The embedded single-host store: the key-value engine (kv/) plus a JSON
 * file, default /var/lib/sluice/state.json (format: codec.ts).
 *
 * Durability: every write batch is on disk as one whole version of the file
 * (state-file.ts) before the calls in the batch resolve, so a kill -9 never
 * loses a write that was acknowledged.
 *
 * Several processes (the agent and the `sluice` CLI) may open the same file:
 * - writes run under the lock file (lock.ts);
 * - under the lock the file is read again if another process changed it
 *   (the file's identity: inode, size, mtime), so a batch always applies to
 *   the newest state;
 * - reads look at the file's identity first, so they see every acknowledged
 *   write of any process;
 * - watches poll the identity every 100 ms; the file keeps the last
 *   revisions' events, so another process's writes arrive as ordinary events
 *   with their own revisions (a gap longer than that history resets the watch).
 *
 * Leases: the file holds each lease's expiry time. The holder rewrites it
 * every TTL/3; whichever process writes next after the expiry (or runs an
 * expiry timer, or reads) removes the lease and its keys.
 *
 * Calls in one process that arrive while a batch is being written are
 * grouped into the next batch: one fsync for many writes.
 *
 * One file: one class, whose write batching, polling and leases share its
 * pending queue, replica and lease table; the engine, codec, lock and file
 * writes already live apart (kv/, codec.ts, lock.ts, state-file.ts,
 * replica.ts).
 */
import { resolve } from 'node:path';
import { SluiceError, StoreUnavailableError, errorMessage } from '../../errors';
import { systemClock, type Clock } from '../../util/clock';
import { validateTtl } from '../held-lease';
import { KvEngine, closedStoreError } from '../kv/engine';
import { LocalLease, OwnLeases } from '../kv/own-leases';
import { KvState, LeaseNotFoundError, newStoreId } from '../kv/state';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchHandlers } from '../store';
import { CorruptStateError } from './codec';
import { errorCode } from './files';
import { FileLock } from './lock';
import { FileReplica } from './replica';
import { StateFile } from './state-file';

export const DEFAULT_STATE_PATH = '/var/lib/sluice/state.json';

/** Fewer than the memory store keeps: the history is rewritten with every write. */
const FILE_HISTORY_LIMIT = 500;

export interface FileStoreOptions {
  /** How often watches look for writes of other processes. */
  pollIntervalMs?: number;
  /** How long a write waits for the lock before it fails. */
  lockTimeoutMs?: number;
  historyLimit?: number;
  /** Lease expiry and keepalives; the lock and the polling go by real time, as the file system does. */
  clock?: Clock;
}

interface PendingWrite {
  /** Applies the call to the batch's state; returns how to settle it once the batch is on disk. */
  apply(state: KvState, now: number): () => void;
  fail(err: Error): void;
}

export class FileStore implements Store {
  readonly description: string;
  readonly path: string;
  private readonly clock: Clock;
  private readonly engine: KvEngine;
  private readonly replica: FileReplica;
  private readonly pollIntervalMs: number;
  private pending: PendingWrite[] = [];
  private batchQueued = false;
  private readonly ownLeases = new OwnLeases();
  private readonly watches = new Set<() => void>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;
  private readonly detach: () => void;

  constructor(path: string = DEFAULT_STATE_PATH, options: FileStoreOptions = {}) {
    this.path = resolve(path);
    this.description = `state file ${this.path}`;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    const historyLimit = options.historyLimit ?? FILE_HISTORY_LIMIT;
    this.clock = options.clock ?? systemClock;
    this.engine = new KvEngine({
      clock: this.clock,
      // No state yet, not even an id: the file's first write picks one.
      state: KvState.empty('', historyLimit),
      // Leases expire in the file: a batch removes those due before anything else.
      expire: () => (this.closed ? undefined : this.write(() => undefined)),
    });
    this.detach = this.engine.attach(() => this.ownLeases.check(this.engine.state));
    const lock = new FileLock(this.path, this.description, options.lockTimeoutMs ?? 3000);
    this.replica = new FileReplica(new StateFile(this.path), lock, this.engine, this.clock, historyLimit);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.readState()).get(key);
  }

  async list(prefix: string): Promise<ListResult> {
    return (await this.readState()).list(prefix);
  }

  create(key: string, value: string, lease?: Lease): Promise<number | undefined> {
    return this.write((s) => s.create(key, value, lease?.id));
  }

  compareAndSwap(key: string, value: string, expectedModRevision: number, lease?: Lease): Promise<boolean> {
    return this.write((s) => s.compareAndSwap(key, value, expectedModRevision, lease?.id));
  }

  put(key: string, value: string, lease?: Lease): Promise<void> {
    return this.write((s) => s.put(key, value, lease?.id));
  }

  /** Checked and applied under the lock, on the file's newest state: atomic across processes too. */
  putIfUnchanged(
    expect: readonly [Unchanged, ...Unchanged[]],
    puts: readonly { key: string; value: string }[],
    deletes?: readonly string[],
  ): Promise<boolean> {
    return this.write((s) => s.putIfUnchanged(expect, puts, deletes));
  }

  delete(key: string, expectedModRevision?: number): Promise<boolean> {
    return this.write((s) => s.delete(key, expectedModRevision));
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    if (this.closed) throw closedStoreError(this.description);
    let stop: (() => void) | undefined;
    let closed = false;
    const close = (): void => {
      closed = true;
      stop?.();
      this.watches.delete(close);
      if (this.watches.size === 0) this.stopPolling();
    };
    this.watches.add(close);
    this.startPolling();
    // Read the file first, so "from revision N" and "from now" mean the file's revisions.
    void this.replica.refresh().then(
      () => {
        if (!closed) stop = this.engine.watch(prefix, fromRevision, handlers);
      },
      (err: unknown) => {
        if (closed) return;
        close();
        handlers.onReset(errorMessage(this.convert(err, 'read')));
      },
    );
    return {
      close: () => {
        close();
        return Promise.resolve();
      },
    };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    validateTtl(ttlSeconds);
    const id = newStoreId();
    await this.write((s, now) => s.grantLease(id, ttlSeconds, now + ttlSeconds * 1000));
    const lease = new LocalLease(id, ttlSeconds, (l) => this.revokeLease(l));
    this.ownLeases.add(lease, this.keepAlive(lease));
    // Lost between the write and now? The last check did not know the lease yet.
    this.ownLeases.check(this.engine.state);
    return lease;
  }

  /** Stops keeping this process's leases alive (they expire after their TTL) and ends its watches. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const close of [...this.watches]) close();
    this.ownLeases.removeAll();
    // Batches already queued still finish: their callers are waiting.
    await this.replica.settled();
    this.detach();
  }

  // Reads

  /** The current state, with the file's latest version and no expired lease left in it. */
  private async readState(): Promise<KvState> {
    if (this.closed) throw closedStoreError(this.description);
    await this.replica.refresh().catch((err: unknown) => {
      throw this.convert(err, 'read');
    });
    if ((this.engine.state.nextExpiry() ?? Infinity) <= this.clock.now()) {
      await this.write(() => undefined); // a batch expires leases before anything else
    }
    return this.engine.state;
  }

  private startPolling(): void {
    if (this.pollTimer || this.closed) return;
    this.pollTimer = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      this.replica
        .refresh()
        .catch((err: unknown) => this.engine.resetWatchers(errorMessage(this.convert(err, 'read'))))
        .finally(() => (this.polling = false));
    }, this.pollIntervalMs);
  }

  private stopPolling(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  // Writes

  /** Queues a call for the next batch; resolves once the batch is on disk. */
  private write<T>(apply: (state: KvState, now: number) => T): Promise<T> {
    if (this.closed) return Promise.reject(closedStoreError(this.description));
    return new Promise<T>((resolveCall, rejectCall) => {
      this.pending.push({
        apply: (state, now) => {
          const result = apply(state, now);
          return () => resolveCall(result);
        },
        fail: rejectCall,
      });
      if (!this.batchQueued) {
        this.batchQueued = true;
        void this.writeBatch();
      }
    });
  }

  /** Runs the calls queued when its turn comes as one batch, in one update of the file. */
  private async writeBatch(): Promise<void> {
    const settle: (() => void)[] = [];
    let batch: PendingWrite[] = [];
    try {
      await this.replica.update(() => {
        this.batchQueued = false;
        batch = this.pending.splice(0);
        return (next, now) => {
          next.expireDue(now);
          for (const call of batch) {
            try {
              settle.push(call.apply(next, now));
            } catch (err) {
              settle.push(() => call.fail(this.convert(err, 'write')));
            }
          }
        };
      });
    } catch (err) {
      const failure = this.convert(err, 'write');
      for (const call of batch) call.fail(failure);
      return;
    }
    for (const done of settle) done();
  }

  // Leases

  /** Rewrites the lease's expiry every TTL/3 until stopped; returns the stop. */
  private keepAlive(lease: LocalLease): () => void {
    let cancel: () => void;
    const tick = (): void => {
      // Failures are retried by the next tick; a lease that expires meanwhile is found lost on the next change.
      this.write((s, now) => s.keepAlive(lease.id, now + lease.ttlSeconds * 1000)).catch(() => undefined);
      cancel = this.clock.setTimer(tick, (lease.ttlSeconds * 1000) / 3);
    };
    cancel = this.clock.setTimer(tick, (lease.ttlSeconds * 1000) / 3);
    return () => cancel();
  }

  private revokeLease(lease: LocalLease): Promise<void> {
    this.ownLeases.remove(lease.id);
    return this.write((s) => {
      s.revokeLease(lease.id);
    });
  }

  // Helpers

  private convert(err: unknown, what: 'read' | 'write'): Error {
    if (err instanceof SluiceError) return err;
    if (err instanceof LeaseNotFoundError) return err.toStoreError(this.description);
    if (err instanceof CorruptStateError) {
      return new StoreUnavailableError(
        `${this.description} is not a valid state file (${err.message}): ` +
          'restore it from a backup, or move it away to start with an empty store',
      );
    }
    const code = errorCode(err);
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? 'check its permissions (run as root?)'
        : code === 'ENOSPC'
          ? 'the disk is full'
          : code === 'EROFS'
            ? 'the file system is read-only'
            : 'check the file and its directory';
    return new StoreUnavailableError(`${this.description}: cannot ${what} (${errorMessage(err)}): ${hint}`);
  }
}
