/**
 * The data of an etcd-like key-value store: keys, leases, a global revision
 * and a bounded event history. Methods are synchronous and validate before
 * they change anything, and a state can be cloned, so a change can be applied
 * to a copy and swapped in once it is safe (on disk, for the file store).
 */
import { randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../../errors';
import type { KeyValue, ListResult, Unchanged, WatchEvent } from '../store';

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
  /** Epoch ms when it expires; null while a holder in this process keeps it alive. */
  readonly expiresAt: number | null;
}

/** All events of one revision. */
export interface HistoryEntry {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

/** A write named a lease the store no longer has. */
export class LeaseNotFoundError extends Error {
  constructor(readonly leaseId: string) {
    super(`lease ${leaseId} not found`);
  }

  /** What the caller of `store` is told. */
  toStoreError(store: string): StoreUnavailableError {
    return new StoreUnavailableError(`${store}: lease ${this.leaseId} has expired or was revoked: grant a new lease and write again`);
  }
}

export function newStoreId(): string {
  return randomBytes(8).toString('hex');
}

/** etcd orders keys by their bytes; UTF-16 order differs for some non-ASCII keys. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export interface KvStateParts {
  /** Random, per store; '' for a store that has no data yet anywhere (a file store before its file). */
  storeId: string;
  revision: number;
  /** Revisions up to this one are no longer in `history`. */
  compactRevision: number;
  kvs: Map<string, StoredKv>;
  leases: Map<string, StoredLease>;
  history: HistoryEntry[];
}

export class KvState {
  /** Random, per store; '' for a store that has no data yet anywhere (its first write picks one). */
  storeId: string;
  revision: number;
  compactRevision: number;
  readonly kvs: Map<string, StoredKv>;
  readonly leases: Map<string, StoredLease>;
  readonly history: HistoryEntry[];
  /** Set by every change, lease-only ones too (they keep the revision): what is to be published, or written. */
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

  create(key: string, value: string, leaseId?: string): number | undefined {
    if (this.kvs.has(key)) return undefined;
    this.requireLease(leaseId);
    this.commit([{ key, value, lease: leaseId }]);
    return this.revision;
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
