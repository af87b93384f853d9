/**
 * The store without a file: the key-value engine (kv/) in memory, for tests.
 * `MemoryStore` is one client of an engine (the `Store` interface); several
 * clients can share one engine, like several processes on one etcd.
 *
 * Leases: a lease whose holder is open never expires (the holder keeps it
 * alive); once the holder closes, it expires `ttl` seconds later, on the
 * injected clock. `engine.expireLease()` expires one at once, for tests of
 * what happens when a lease is lost.
 */
import { validateTtl } from './held-lease';
import { KvEngine, closedStoreError, type KvEngineOptions } from './kv/engine';
import { LocalLease, OwnLeases } from './kv/own-leases';
import { LeaseNotFoundError, newStoreId } from './kv/state';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchHandlers } from './store';

export interface MemoryStoreOptions extends KvEngineOptions {
  /** Share another store's data, like a second process on the same etcd. */
  engine?: KvEngine;
  description?: string;
}

export class MemoryStore implements Store {
  readonly description: string;
  readonly engine: KvEngine;
  private readonly leases = new OwnLeases();
  private readonly watches = new Set<() => void>();
  private readonly detach: () => void;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.engine = options.engine ?? new KvEngine(options);
    this.description = options.description ?? 'in-memory store';
    this.detach = this.engine.attach(() => this.leases.check(this.engine.state));
  }

  /** Another client on the same data (an agent and the CLI, or two agents). */
  connect(): MemoryStore {
    return new MemoryStore({ engine: this.engine, description: this.description });
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.run(() => this.engine.state.get(key));
  }

  list(prefix: string): Promise<ListResult> {
    return this.run(() => this.engine.state.list(prefix));
  }

  create(key: string, value: string, lease?: Lease): Promise<number | undefined> {
    return this.run(() => this.engine.mutate((s) => s.create(key, value, lease?.id)));
  }

  compareAndSwap(key: string, value: string, expectedModRevision: number, lease?: Lease): Promise<boolean> {
    return this.run(() => this.engine.mutate((s) => s.compareAndSwap(key, value, expectedModRevision, lease?.id)));
  }

  put(key: string, value: string, lease?: Lease): Promise<void> {
    return this.run(() => this.engine.mutate((s) => s.put(key, value, lease?.id)));
  }

  putIfUnchanged(
    expect: readonly [Unchanged, ...Unchanged[]],
    puts: readonly { key: string; value: string }[],
    deletes?: readonly string[],
  ): Promise<boolean> {
    return this.run(() => this.engine.mutate((s) => s.putIfUnchanged(expect, puts, deletes)));
  }

  delete(key: string, expectedModRevision?: number): Promise<boolean> {
    return this.run(() => this.engine.mutate((s) => s.delete(key, expectedModRevision)));
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    if (this.closed) throw closedStoreError(this.description);
    const stop = this.engine.watch(prefix, fromRevision, handlers);
    this.watches.add(stop);
    return {
      close: () => {
        stop();
        this.watches.delete(stop);
        return Promise.resolve();
      },
    };
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.run(() => {
      validateTtl(ttlSeconds);
      const id = newStoreId();
      this.engine.mutate((s) => s.grantLease(id, ttlSeconds, null));
      const lease = new LocalLease(id, ttlSeconds, (l) => this.revokeLease(l));
      this.leases.add(lease);
      return lease;
    });
  }

  /** Stops keeping this client's leases alive (they expire after their TTL, as with etcd) and ends its watches. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const stop of this.watches) stop();
    this.watches.clear();
    const now = this.engine.clock.now();
    for (const lease of this.leases.removeAll()) {
      this.engine.mutate((s) => s.keepAlive(lease.id, now + lease.ttlSeconds * 1000));
    }
    this.detach();
    return Promise.resolve();
  }

  private revokeLease(lease: LocalLease): Promise<void> {
    return this.run(() => {
      this.leases.remove(lease.id);
      this.engine.mutate((s) => s.revokeLease(lease.id));
    });
  }

  /** Runs `fn` as a store call: rejects after close, converts a missing lease. */
  private run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve) => {
      if (this.closed) throw closedStoreError(this.description);
      try {
        resolve(fn());
      } catch (err) {
        throw err instanceof LeaseNotFoundError ? err.toStoreError(this.description) : err;
      }
    });
  }
}
