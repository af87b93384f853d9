/**
 * The store seam: everything Sluice keeps is a string value under a string key,
 * with etcd v3 semantics (a global revision, create-if-absent, compare-and-swap,
 * multi-key transactions, leases, watches that resume from a revision). Two implementations: etcd
 * (`etcd-store.ts`) for clusters and the embedded file store (`file-store/`) for one host, on
 * the key-value engine of `kv/`; `memory-store.ts` is that engine without a file, for tests.
 *
 * Every method either resolves within a few seconds or rejects with
 * StoreUnavailableError naming the store, so no caller can hang on it.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Store revision of the last change to this key. */
  modRevision: number;
}

export type WatchEvent =
  | { type: 'put'; kv: KeyValue }
  | { type: 'delete'; key: string; modRevision: number };

export interface WatchHandlers {
  /** Events of one or more revisions, in order; `revision` is the newest revision seen. */
  onEvents(events: WatchEvent[], revision: number): void;
  /**
   * The watch broke (compaction past `fromRevision`, connection lost). The
   * store keeps retrying; the caller must re-list and diff, since events were
   * missed. After onReset the watch delivers events again from a fresh list's
   * revision only once the caller calls watch() anew, so the caller closes it.
   */
  onReset(reason: string): void;
}

export interface Watch {
  close(): Promise<void>;
}

/** A lease kept alive by the store until revoked; keys put with it vanish when it expires. */
export interface Lease {
  readonly id: string;
  /** Called once if the lease expired or could not be kept alive; re-grant and re-put. */
  onLost(callback: () => void): void;
  revoke(): Promise<void>;
}

export interface ListResult {
  kvs: KeyValue[];
  /** Store revision the list was read at; watch from revision + 1. */
  revision: number;
}

/** A transaction's condition: `key` still has this modRevision (0: the key is absent). */
export interface Unchanged {
  key: string;
  modRevision: number;
}

export interface Store {
  /** Names the store in error messages, e.g. "etcd at 127.0.0.1:2379" or "state file /var/lib/sluice/state.json". */
  readonly description: string;
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with `prefix`, sorted by key. */
  list(prefix: string): Promise<ListResult>;
  /** Creates `key` only if absent: its modRevision if this call created it, else undefined. */
  create(key: string, value: string, lease?: Lease): Promise<number | undefined>;
  /** Replaces `key` only if its modRevision is still `expectedModRevision`; true if it did. */
  compareAndSwap(key: string, value: string, expectedModRevision: number, lease?: Lease): Promise<boolean>;
  put(key: string, value: string, lease?: Lease): Promise<void>;
  /**
   * Puts every pair of `puts` and deletes every key of `deletes` (all keys distinct) in one
   * revision, only if every key of `expect` still has its modRevision; true if it did. All or
   * nothing, for every client. etcd refuses more than 128 operations in one transaction.
   */
  putIfUnchanged(
    expect: readonly [Unchanged, ...Unchanged[]],
    puts: readonly { key: string; value: string }[],
    deletes?: readonly string[],
  ): Promise<boolean>;
  /** Deletes `key` (only if unchanged since `expectedModRevision`, when given); true if it deleted it. */
  delete(key: string, expectedModRevision?: number): Promise<boolean>;
  /** Events for keys under `prefix` from `fromRevision` on (inclusive). */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch;
  grantLease(ttlSeconds: number): Promise<Lease>;
  close(): Promise<void>;
}
