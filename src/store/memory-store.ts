/**
 * The store engine without a file: etcd v3 semantics in memory.
 *
 * - `KvState` is the data (keys, leases, a global revision, a bounded event
 *   history). Its methods are synchronous and validate before they change
 *   anything, and it can be cloned: the file store applies a batch to a copy
 *   and swaps it in only once the copy is on disk.
 * - `MemoryEngine` holds the current `KvState` and the watchers. Whenever the
 *   state changes it "pumps" each watcher from the history, in a microtask, so
 *   events are never delivered inside the mutating call and always in order.
 * - `MemoryStore` is one client of an engine (the `Store` interface). Several
 *   clients can share one engine, like several processes on one etcd.
 *
 * Leases: a lease whose holder is open never expires (the holder keeps it
 * alive); once the holder closes, it expires `ttl` seconds later, on the
 * injected clock. `MemoryEngine.expireLease()` expires one at once, for tests
 * of what happens when a lease is lost.
 */
import { HeldLease } from './held-lease';
import { randomBytes } from 'node:crypto';
import { BadRequestError, StoreUnavailableError } from '../errors';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchEvent, WatchHandlers } from './store';
import { systemClock, type Clock } from '../util/clock';

/**
 * Revisions of history kept for watches that start in the past. A watch that
 * starts before it gets onReset, as after an etcd compaction.
 */
export const DEFAULT_HISTORY_LIMIT = 1000;

export interface StoredKv {
  readonly value: string;
  readonly modRevision: number;
  readonly lease?: string;
}

export interface StoredLease {
  readonly ttlSeconds: number;
  /** Epoch ms when it expires; null while an in-process holder keeps it alive. */
  readonly expiresAt: number | null;
}

/** All events of one revision. */
export interface HistoryEntry {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

/** A write named a lease the store no longer has; each store turns it into its own message. */
export class LeaseNotFoundError extends Error {
  constructor(readonly leaseId: string) {
    super(`lease ${leaseId} not found`);
  }
}

export function newStoreId(): string {
  return randomBytes(8).toString('hex');
}

/** etcd orders keys by their bytes; UTF-16 order differs for some non-ASCII keys. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function validateTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new BadRequestError(`lease TTL must be a whole number of seconds, at least 1; got ${ttlSeconds}`);
  }
}

export interface KvStateParts {
  /** Random, per store; '' for a file store whose file does not exist yet. */
  storeId: string;
  revision: number;
  /** Revisions up to this one are no longer in `history`. */
  compactRevision: number;
  kvs: Map<string, StoredKv>;
  leases: Map<string, StoredLease>;
  history: HistoryEntry[];
}

export class KvState {
  /** Random, per store; '' while a file store's file does not exist yet (its first write picks one). */
  storeId: string;
  revision: number;
  compactRevision: number;
  readonly kvs: Map<string, StoredKv>;
  readonly leases: Map<string, StoredLease>;
  readonly history: HistoryEntry[];
  /** Set by every change, lease-only ones too (they keep the revision): tells the file store to write. */
  changed = false;

  constructor(
    parts: KvStateParts,
    readonly historyLimit: number = DEFAULT_HISTORY_LIMIT,
  ) {
    this.storeId = parts.storeId;
    this.revision = parts.revision;
    this.compactRevision = parts.compactRevision;
    this.kvs = parts.kvs;
    this.leases = parts.leases;
    this.history = parts.history;
  }

  static empty(storeId: string = newStoreId(), historyLimit = DEFAULT_HISTORY_LIMIT): KvState {
    const parts = { storeId, revision: 0, compactRevision: 0, kvs: new Map(), leases: new Map(), history: [] };
    return new KvState(parts, historyLimit);
  }

  /** A copy to change; the entries themselves are immutable and shared. */
  clone(): KvState {
    return new KvState(
      {
        storeId: this.storeId,
        revision: this.revision,
        compactRevision: this.compactRevision,
        kvs: new Map(this.kvs),
        leases: new Map(this.leases),
        history: this.history.slice(),
      },
      this.historyLimit,
    );
  }

  get(key: string): KeyValue | undefined {
    const kv = this.kvs.get(key);
    return kv && { key, value: kv.value, modRevision: kv.modRevision };
  }

  list(prefix: string): ListResult {
    const kvs: KeyValue[] = [];
    for (const [key, kv] of this.kvs) {
      if (key.startsWith(prefix)) kvs.push({ key, value: kv.value, modRevision: kv.modRevision });
    }
    kvs.sort((a, b) => compareKeys(a.key, b.key));
    return { kvs, revision: this.revision };
  }

  create(key: string, value: string, leaseId?: string): boolean {
    if (this.kvs.has(key)) return false;
    this.requireLease(leaseId);
    this.commit([{ key, value, lease: leaseId }]);
    return true;
  }

  /** As etcd's `mod_revision == expected`: an absent key has modRevision 0. */
  compareAndSwap(key: string, value: string, expectedModRevision: number, leaseId?: string): boolean {
    if ((this.kvs.get(key)?.modRevision ?? 0) !== expectedModRevision) return false;
    this.requireLease(leaseId);
    this.commit([{ key, value, lease: leaseId }]);
    return true;
  }

  /** As etcd's txn `if mod(k1) == r1 and ... then put... delete...`: deleting an absent key is no event. */
  putIfUnchanged(expect: readonly Unchanged[], puts: readonly { key: string; value: string }[], deletes: readonly string[] = []): boolean {
    if (expect.some(({ key, modRevision }) => (this.kvs.get(key)?.modRevision ?? 0) !== modRevision)) return false;
    const changes = [...puts, ...deletes.filter((key) => this.kvs.has(key)).map((key) => ({ key }))];
    if (changes.length > 0) this.commit(changes);
    return true;
  }

  /** As etcd, a put without a lease detaches the key from the lease it had. */
  put(key: string, value: string, leaseId?: string): void {
    this.requireLease(leaseId);
    this.commit([{ key, value, lease: leaseId }]);
  }

  delete(key: string, expectedModRevision?: number): boolean {
    const kv = this.kvs.get(key);
    if (!kv || (expectedModRevision !== undefined && kv.modRevision !== expectedModRevision)) return false;
    this.commit([{ key }]);
    return true;
  }

  grantLease(id: string, ttlSeconds: number, expiresAt: number | null): void {
    this.leases.set(id, { ttlSeconds, expiresAt });
    this.changed = true;
  }

  /** Moves the lease's expiry; false if the lease is gone (expired or revoked). */
  keepAlive(id: string, expiresAt: number | null): boolean {
    const lease = this.leases.get(id);
    if (!lease) return false;
    this.leases.set(id, { ttlSeconds: lease.ttlSeconds, expiresAt });
    this.changed = true;
    return true;
  }

  /** Removes the lease and, in one revision, every key attached to it. */
  revokeLease(id: string): boolean {
    if (!this.leases.delete(id)) return false;
    this.changed = true;
    const keys = [...this.kvs].filter(([, kv]) => kv.lease === id).map(([key]) => ({ key }));
    if (keys.length > 0) this.commit(keys);
    return true;
  }

  /** Revokes every lease expired at `now`; returns their ids. */
  expireDue(now: number): string[] {
    const due = [...this.leases].filter(([, lease]) => lease.expiresAt !== null && lease.expiresAt <= now);
    for (const [id] of due) this.revokeLease(id);
    return due.map(([id]) => id);
  }

  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const { expiresAt } of this.leases.values()) {
      if (expiresAt !== null && (next === undefined || expiresAt < next)) next = expiresAt;
    }
    return next;
  }

  private requireLease(leaseId: string | undefined): void {
    if (leaseId !== undefined && !this.leases.has(leaseId)) throw new LeaseNotFoundError(leaseId);
  }

  /** One new revision: puts (with a value) and deletes (without), recorded in the history. */
  private commit(changes: { key: string; value?: string; lease?: string | undefined }[]): void {
    const revision = ++this.revision;
    const events = changes.map(({ key, value, lease }): WatchEvent => {
      if (value === undefined) {
        this.kvs.delete(key);
        return Object.freeze({ type: 'delete', key, modRevision: revision });
      }
      this.kvs.set(key, lease === undefined ? { value, modRevision: revision } : { value, modRevision: revision, lease });
      return Object.freeze({ type: 'put', kv: Object.freeze({ key, value, modRevision: revision }) });
    });
    this.history.push({ revision, events });
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactRevision = dropped[dropped.length - 1]?.revision ?? this.compactRevision;
    }
    this.changed = true;
  }
}

interface EngineWatcher {
  readonly prefix: string;
  readonly handlers: WatchHandlers;
  /** The next revision to deliver. */
  next: number;
  /** The store revision at the last pump, to notice a store that went back. */
  seenRevision: number;
  storeId: string;
  closed: boolean;
  scheduled: boolean;
}

export interface MemoryEngineOptions {
  clock?: Clock;
  historyLimit?: number;
  /** Expire leases on the clock. The file store turns this off: it expires them with a write. */
  expireLeases?: boolean;
  /** Initial state; the file store starts from an empty one without a store id. */
  state?: KvState;
}

export class MemoryEngine {
  readonly clock: Clock;
  private current: KvState;
  private readonly watchers = new Set<EngineWatcher>();
  private readonly clients = new Set<() => void>();
  private readonly expireLeases: boolean;
  private cancelExpiry: (() => void) | undefined;

  constructor(options: MemoryEngineOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.current = options.state ?? KvState.empty(newStoreId(), options.historyLimit);
    this.expireLeases = options.expireLeases ?? true;
  }

  get state(): KvState {
    return this.current;
  }

  /** Applies `fn` to the live state and publishes what it changed. `fn` must validate before changing. */
  mutate<T>(fn: (state: KvState) => T): T {
    this.current.changed = false;
    const result = fn(this.current);
    if (this.current.changed) this.publish();
    return result;
  }

  /** Swaps in a new state (a batch applied to a copy, or a file another process wrote) and publishes it. */
  replace(next: KvState): void {
    this.current = next;
    this.publish();
  }

  /** Registers a watcher; returns the function that removes it. */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): () => void {
    const s = this.current;
    const watcher: EngineWatcher = {
      prefix,
      handlers,
      // As etcd: a start revision of 0 means "from now on".
      next: fromRevision >= 1 ? fromRevision : s.revision + 1,
      seenRevision: s.revision,
      storeId: s.storeId,
      closed: false,
      scheduled: false,
    };
    this.watchers.add(watcher);
    this.schedule(watcher);
    return () => {
      watcher.closed = true;
      this.watchers.delete(watcher);
    };
  }

  /** Ends every watch with onReset, e.g. when the file can no longer be read. */
  resetWatchers(reason: string): void {
    for (const watcher of this.watchers) this.reset(watcher, reason);
  }

  /** Expires a lease now, as if its holder had stopped keeping it alive: for tests of lease loss. */
  expireLease(id: string): void {
    this.mutate((s) => s.revokeLease(id));
  }

  /**
   * Registers a client; `onChange` runs after every change (clients check
   * their leases there). Leases expire on the clock only while a client is
   * attached, so a test's engine holds no timer once its stores are closed.
   */
  attach(onChange: () => void): () => void {
    this.clients.add(onChange);
    this.scheduleExpiry();
    return () => {
      this.clients.delete(onChange);
      this.scheduleExpiry();
    };
  }

  private publish(): void {
    for (const watcher of this.watchers) this.schedule(watcher);
    for (const onChange of this.clients) onChange();
    this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    const next = this.current.nextExpiry();
    if (!this.expireLeases || this.clients.size === 0 || next === undefined) return;
    this.cancelExpiry = this.clock.setTimer(
      () => {
        this.cancelExpiry = undefined;
        this.mutate((s) => s.expireDue(this.clock.now()));
        this.scheduleExpiry();
      },
      Math.max(0, next - this.clock.now()),
    );
  }

  private schedule(watcher: EngineWatcher): void {
    if (watcher.scheduled || watcher.closed) return;
    watcher.scheduled = true;
    queueMicrotask(() => this.pump(watcher));
  }

  /** Delivers everything from `watcher.next` to the current revision, or resets it if that is impossible. */
  private pump(watcher: EngineWatcher): void {
    watcher.scheduled = false;
    if (watcher.closed) return;
    const s = this.current;
    // A file store watch made before the file existed adopts the file's id.
    if (watcher.storeId === '') watcher.storeId = s.storeId;
    if (s.storeId !== watcher.storeId) {
      this.reset(watcher, 'the store was replaced by a different one');
      return;
    }
    if (s.revision < watcher.seenRevision) {
      this.reset(watcher, `the store went back from revision ${watcher.seenRevision} to ${s.revision}`);
      return;
    }
    watcher.seenRevision = s.revision;
    if (s.revision < watcher.next) return;
    if (watcher.next <= s.compactRevision) {
      this.reset(
        watcher,
        `revision ${watcher.next} is no longer in the history (kept from ${s.compactRevision + 1}); list again`,
      );
      return;
    }
    const events: WatchEvent[] = [];
    for (const entry of s.history) {
      if (entry.revision < watcher.next) continue;
      for (const event of entry.events) {
        if ((event.type === 'put' ? event.kv.key : event.key).startsWith(watcher.prefix)) events.push(event);
      }
    }
    watcher.next = s.revision + 1;
    if (events.length > 0) watcher.handlers.onEvents(events, s.revision);
  }

  private reset(watcher: EngineWatcher, reason: string): void {
    if (watcher.closed) return;
    watcher.closed = true;
    this.watchers.delete(watcher);
    watcher.handlers.onReset(reason);
  }
}

/** The Lease handed out by the memory and file stores. */
export class LocalLease extends HeldLease<LocalLease> {
  constructor(
    id: string,
    readonly ttlSeconds: number,
    revokeFn: (lease: LocalLease) => Promise<void>,
  ) {
    super(id, revokeFn);
  }
}

export interface MemoryStoreOptions extends MemoryEngineOptions {
  /** Share another store's data, like a second process on the same etcd. */
  engine?: MemoryEngine;
  description?: string;
}

export class MemoryStore implements Store {
  readonly description: string;
  readonly engine: MemoryEngine;
  private readonly leases = new Map<string, LocalLease>();
  private readonly watches = new Set<() => void>();
  private readonly detach: () => void;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.engine = options.engine ?? new MemoryEngine(options);
    this.description = options.description ?? 'in-memory store';
    this.detach = this.engine.attach(() => this.checkLeases());
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

  create(key: string, value: string, lease?: Lease): Promise<boolean> {
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
    if (this.closed) throw this.closedError();
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
      this.leases.set(id, lease);
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
    for (const lease of this.leases.values()) {
      this.engine.mutate((s) => s.keepAlive(lease.id, now + lease.ttlSeconds * 1000));
    }
    this.leases.clear();
    this.detach();
    return Promise.resolve();
  }

  private revokeLease(lease: LocalLease): Promise<void> {
    return this.run(() => {
      this.leases.delete(lease.id);
      this.engine.mutate((s) => s.revokeLease(lease.id));
    });
  }

  private checkLeases(): void {
    for (const [id, lease] of this.leases) {
      if (!this.engine.state.leases.has(id)) {
        this.leases.delete(id);
        lease.markLost();
      }
    }
  }

  /** Runs `fn` as a store call: rejects after close, converts a missing lease. */
  private run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve) => {
      if (this.closed) throw this.closedError();
      try {
        resolve(fn());
      } catch (err) {
        if (err instanceof LeaseNotFoundError) {
          throw new StoreUnavailableError(
            `${this.description}: lease ${err.leaseId} has expired or was revoked: grant a new lease and write again`,
          );
        }
        throw err;
      }
    });
  }

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(`${this.description} is closed: open the store again`);
  }
}
