/**
 * The embedded single-host store: the memory engine (memory-store.ts) plus a
 * JSON file, default /var/lib/sluice/state.json.
 *
 * Durability: every write batch goes to a temp file in the same directory,
 * which is fsynced, renamed over the state file, and the directory fsynced,
 * all before the calls in the batch resolve. A kill -9 at any moment leaves
 * either the old or the new file, never a torn one, and never loses a write
 * that was acknowledged.
 *
 * Several processes (the agent and the `sluice` CLI) may open the same file:
 * - writes run under `<path>.lock`, created atomically and holding
 *   "PID PID-NAMESPACE"; a lock whose process is dead (or that is older than
 *   any write could take) is stale and broken;
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
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { link, mkdir, open, readdir, readlink, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SluiceError, StoreUnavailableError, errorMessage } from '../errors';
import {
  KvState,
  LeaseNotFoundError,
  LocalLease,
  MemoryEngine,
  newStoreId,
  validateTtl,
  type HistoryEntry,
  type StoredKv,
  type StoredLease,
} from './memory-store';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchEvent, WatchHandlers } from './store';

export const DEFAULT_STATE_PATH = '/var/lib/sluice/state.json';

const FORMAT = 'sluice-state/1';
/** Fewer than the memory store keeps: the history is rewritten with every write. */
const FILE_HISTORY_LIMIT = 500;
/** No write holds the lock this long; an older lock is left by a process we cannot see (another pid namespace). */
const STALE_LOCK_MS = 30_000;
/** A lock breaker dies between two syscalls only by kill -9; its guard file is then this old. */
const STALE_GUARD_MS = 2_000;

export interface FileStoreOptions {
  /** How often watches look for writes of other processes. */
  pollIntervalMs?: number;
  /** How long a write waits for the lock before it fails. */
  lockTimeoutMs?: number;
  historyLimit?: number;
}

/** What tells one version of the file from another: every write makes a new inode with a new mtime. */
interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

interface PendingWrite {
  /** Applies the call to the batch's state; returns how to settle it once the batch is on disk. */
  apply(state: KvState, now: number): () => void;
  fail(err: Error): void;
}

interface OwnLease {
  lease: LocalLease;
  keepAlive: NodeJS.Timeout;
}

export class FileStore implements Store {
  readonly description: string;
  readonly path: string;
  private readonly lockPath: string;
  private readonly engine: MemoryEngine;
  private readonly pollIntervalMs: number;
  private readonly lockTimeoutMs: number;
  private readonly historyLimit: number;
  /** Identity of the file version the engine holds; undefined while there is no file. */
  private loaded: FileIdentity | undefined;
  /** Reads of the file and write batches run one at a time, in this chain. */
  private chain: Promise<void> = Promise.resolve();
  private pending: PendingWrite[] = [];
  private batchQueued = false;
  private readonly ownLeases = new Map<string, OwnLease>();
  private readonly watches = new Set<() => void>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  private cleanedTemps = false;
  private tempCounter = 0;
  private closed = false;
  private readonly detach: () => void;

  constructor(path: string = DEFAULT_STATE_PATH, options: FileStoreOptions = {}) {
    this.path = resolve(path);
    this.lockPath = `${this.path}.lock`;
    this.description = `state file ${this.path}`;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 3000;
    this.historyLimit = options.historyLimit ?? FILE_HISTORY_LIMIT;
    this.engine = new MemoryEngine({ expireLeases: false, state: KvState.empty('', this.historyLimit) });
    this.detach = this.engine.attach(() => this.afterChange());
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.readState()).get(key);
  }

  async list(prefix: string): Promise<ListResult> {
    return (await this.readState()).list(prefix);
  }

  create(key: string, value: string, lease?: Lease): Promise<boolean> {
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
    if (this.closed) throw this.closedError();
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
    void this.serially(() => this.refresh()).then(
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
    // The keepalive timer does not keep the process alive; a lease alone is no reason to run.
    const keepAlive = setInterval(() => this.keepAlive(lease), (ttlSeconds * 1000) / 3).unref();
    this.ownLeases.set(id, { lease, keepAlive });
    // Lost between the write and now? afterChange() saw no own lease yet.
    if (!this.engine.state.leases.has(id)) this.loseLease(id);
    return lease;
  }

  /** Stops keeping this process's leases alive (they expire after their TTL) and ends its watches. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const close of [...this.watches]) close();
    for (const { keepAlive } of this.ownLeases.values()) clearInterval(keepAlive);
    this.ownLeases.clear();
    clearTimeout(this.expiryTimer);
    // Batches already queued still finish: their callers are waiting.
    await this.chain;
    this.detach();
  }

  // Reads

  /** The current state, with the file's latest version and no expired lease left in it. */
  private async readState(): Promise<KvState> {
    if (this.closed) throw this.closedError();
    await this.serially(() => this.refresh()).catch((err: unknown) => {
      throw this.convert(err, 'read');
    });
    if ((this.engine.state.nextExpiry() ?? Infinity) <= Date.now()) {
      await this.write(() => undefined); // a batch expires leases before anything else
    }
    return this.engine.state;
  }

  /** Loads the file into the engine if it is not the version the engine holds. Runs in the chain. */
  private async refresh(): Promise<void> {
    let current: BigIntStats;
    try {
      current = await stat(this.path, { bigint: true });
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
      if (this.loaded) {
        // Someone removed the file: the store starts again from nothing, and watches reset.
        this.loaded = undefined;
        this.engine.replace(KvState.empty('', this.historyLimit));
      }
      return;
    }
    if (this.loaded && sameFile(this.loaded, identityOf(current))) return;
    const handle = await open(this.path, 'r');
    try {
      const identity = identityOf(await handle.stat({ bigint: true }));
      const state = decodeState(await handle.readFile('utf8'), this.historyLimit);
      this.engine.replace(state);
      this.loaded = identity;
    } finally {
      await handle.close();
    }
  }

  private startPolling(): void {
    if (this.pollTimer || this.closed) return;
    this.pollTimer = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      this.serially(() => this.refresh())
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
    if (this.closed) return Promise.reject(this.closedError());
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
        void this.serially(() => this.writeBatch());
      }
    });
  }

  /** Runs the calls queued so far as one batch: lock, re-read, apply to a copy, write, swap in. */
  private async writeBatch(): Promise<void> {
    this.batchQueued = false;
    const batch = this.pending.splice(0);
    const settle: (() => void)[] = [];
    try {
      await this.lock();
      try {
        await this.refresh();
        if (!this.cleanedTemps) await this.removeTempFiles();
        const now = Date.now();
        const next = this.engine.state.clone();
        if (next.storeId === '') next.storeId = newStoreId(); // the file's first write
        next.expireDue(now);
        for (const call of batch) {
          try {
            settle.push(call.apply(next, now));
          } catch (err) {
            settle.push(() => call.fail(this.convert(err, 'write')));
          }
        }
        if (next.changed) {
          this.loaded = await this.writeFile(next);
          this.engine.replace(next);
        }
      } finally {
        await this.unlock();
      }
    } catch (err) {
      const failure = this.convert(err, 'write');
      for (const call of batch) call.fail(failure);
      return;
    }
    for (const done of settle) done();
  }

  /** temp file, fsync, rename over, fsync the directory: the file is always one whole version. */
  private async writeFile(state: KvState): Promise<FileIdentity> {
    const temp = `${this.path}.tmp-${process.pid}-${++this.tempCounter}`;
    try {
      const handle = await open(temp, 'w', 0o644);
      let identity: FileIdentity;
      try {
        await handle.writeFile(encodeState(state));
        await handle.sync();
        identity = identityOf(await handle.stat({ bigint: true }));
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await syncDirectory(dirname(this.path));
      return identity;
    } catch (err) {
      // The write's failure is the one to report; a temp file left over is removed at the next start.
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }

  /** Temp files are only written under the lock, so any we find while holding it were left by a crash. */
  private async removeTempFiles(): Promise<void> {
    this.cleanedTemps = true;
    const dir = dirname(this.path);
    const base = basename(this.path);
    // Housekeeping: a file another process removed first, or one that cannot go, harms nothing.
    for (const name of await readdir(dir)) {
      if (name.startsWith(`${base}.tmp-`)) await unlink(join(dir, name)).catch(() => undefined);
      else if (name.startsWith(`${basename(this.lockPath)}.new-`)) {
        // A half-taken lock of a crashed process; old enough not to be one being taken now.
        const age = await stat(join(dir, name)).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > STALE_LOCK_MS) await unlink(join(dir, name)).catch(() => undefined);
      }
    }
  }

  // The lock file

  private async lock(): Promise<void> {
    const deadline = Date.now() + this.lockTimeoutMs;
    const owner = `${process.pid} ${await pidNamespace()}\n`;
    for (;;) {
      // Written in full under another name, then linked: the lock never exists without its owner.
      const candidate = `${this.lockPath}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await writeSmallFile(candidate, owner);
        await link(candidate, this.lockPath);
        return;
      } catch (err) {
        if (errorCode(err) === 'ENOENT') {
          await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
          continue;
        }
        if (errorCode(err) !== 'EEXIST') throw err;
      } finally {
        // Linked as the lock or not: the candidate name itself is no longer needed.
        await unlink(candidate).catch(() => undefined);
      }
      const holder = await this.liveHolder();
      if (holder === undefined) continue; // released, or stale and broken: try again at once
      if (Date.now() >= deadline) {
        throw new StoreUnavailableError(
          `${this.description} stayed locked by ${holder} for ${this.lockTimeoutMs / 1000}s: ` +
            `if no sluice process is using the file, remove ${this.lockPath}`,
        );
      }
      await sleep(5 + Math.random() * 15);
    }
  }

  private async unlock(): Promise<void> {
    // Already gone (removed as stale) or not removable: the next taker checks its holder anyway.
    await unlink(this.lockPath).catch(() => undefined);
  }

  /** Describes the process holding the lock, or breaks a stale lock and returns undefined. */
  private async liveHolder(): Promise<string | undefined> {
    const lock = await readLock(this.lockPath);
    if (!lock) return undefined; // released meanwhile
    const age = Date.now() - Number(lock.identity.mtimeNs / 1_000_000n);
    const sameNamespace = lock.namespace === (await pidNamespace());
    // A pid from another pid namespace says nothing here: only the age can tell.
    if (age < STALE_LOCK_MS && (!sameNamespace || processAlive(lock.pid))) {
      return `pid ${lock.pid}${sameNamespace ? '' : ` (pid namespace ${lock.namespace})`}`;
    }
    return (await this.breakLock(lock.identity)) ? undefined : 'a process breaking a stale lock';
  }

  /**
   * Removes a stale lock. Two processes could both judge it stale, and the
   * slower one would then remove the faster one's fresh lock; a guard file
   * makes the check-and-remove one step.
   */
  private async breakLock(stale: FileIdentity): Promise<boolean> {
    const guard = `${this.lockPath}.break`;
    try {
      await writeSmallFile(guard, `${process.pid}\n`, 'wx');
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      const age = await stat(guard).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age <= STALE_GUARD_MS) return false;
      // A stale guard another process removed first is just as gone.
      await unlink(guard).catch(() => undefined);
      return true;
    }
    try {
      const lock = await readLock(this.lockPath);
      // Either may have been removed by the process that raced this one: gone is what is wanted.
      if (lock && sameFile(lock.identity, stale)) await unlink(this.lockPath).catch(() => undefined);
      return true;
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }

  // Leases

  private keepAlive(lease: LocalLease): void {
    if (this.closed) return;
    // Failures are retried by the next tick; a lease that expires meanwhile is lost in afterChange().
    this.write((s, now) => s.keepAlive(lease.id, now + lease.ttlSeconds * 1000)).catch(() => undefined);
  }

  private revokeLease(lease: LocalLease): Promise<void> {
    const own = this.ownLeases.get(lease.id);
    if (own) clearInterval(own.keepAlive);
    this.ownLeases.delete(lease.id);
    return this.write((s) => {
      s.revokeLease(lease.id);
    });
  }

  private loseLease(id: string): void {
    const own = this.ownLeases.get(id);
    if (!own) return;
    clearInterval(own.keepAlive);
    this.ownLeases.delete(id);
    own.lease.markLost();
  }

  /** After every change of the engine's state: own leases still there? When does the next one expire? */
  private afterChange(): void {
    const state = this.engine.state;
    for (const id of [...this.ownLeases.keys()]) {
      if (!state.leases.has(id)) this.loseLease(id);
    }
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    const next = state.nextExpiry();
    if (next === undefined || this.closed) return;
    // Removes the keys of a dead holder's lease even if nobody else writes. A housekeeping
    // timer: it does not keep the process alive.
    this.expiryTimer = setTimeout(
      () => {
        // A failed write is retried by the next one, which expires the leases too.
        if (!this.closed) this.write(() => undefined).catch(() => undefined);
      },
      Math.max(0, next - Date.now()) + 5,
    ).unref();
  }

  // Helpers

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private convert(err: unknown, what: 'read' | 'write'): Error {
    if (err instanceof SluiceError) return err;
    if (err instanceof LeaseNotFoundError) {
      return new StoreUnavailableError(
        `${this.description}: lease ${err.leaseId} has expired or was revoked: grant a new lease and write again`,
      );
    }
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

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(`${this.description} is closed: open the store again`);
  }
}

// The file format

class CorruptStateError extends Error {}

interface FileKv {
  key: string;
  value: string;
  modRevision: number;
  lease?: string;
}

interface FileLease {
  id: string;
  ttlSeconds: number;
  expiresAt: number;
}

type FileEvent = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

interface StateFile {
  format: typeof FORMAT;
  storeId: string;
  revision: number;
  compactRevision: number;
  kvs: FileKv[];
  leases: FileLease[];
  /** Events of the last revisions, so other processes' watches see each change. */
  history: { revision: number; events: FileEvent[] }[];
}

export function encodeState(state: KvState): string {
  const file: StateFile = {
    format: FORMAT,
    storeId: state.storeId,
    revision: state.revision,
    compactRevision: state.compactRevision,
    kvs: [...state.kvs].map(([key, kv]) => ({ key, ...kv })),
    leases: [...state.leases].map(([id, lease]) => ({
      id,
      ttlSeconds: lease.ttlSeconds,
      // A file store's leases always expire; null only exists in the memory store.
      expiresAt: lease.expiresAt ?? Date.now() + lease.ttlSeconds * 1000,
    })),
    history: state.history.map(({ revision, events }) => ({
      revision,
      events: events.map((e): FileEvent =>
        e.type === 'put' ? { type: 'put', key: e.kv.key, value: e.kv.value } : { type: 'delete', key: e.key },
      ),
    })),
  };
  return `${JSON.stringify(file, null, 1)}\n`;
}

export function decodeState(text: string, historyLimit: number): KvState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new CorruptStateError(errorMessage(err));
  }
  const file = record(data, 'the file');
  if (file['format'] !== FORMAT) throw new CorruptStateError(`format is not "${FORMAT}"`);
  const revision = count(file['revision'], 'revision');
  const kvs = new Map<string, StoredKv>();
  for (const item of array(file['kvs'], 'kvs')) {
    const kv = record(item, 'a key');
    const lease = kv['lease'];
    const stored: StoredKv = {
      value: text_(kv['value'], 'value'),
      modRevision: count(kv['modRevision'], 'modRevision'),
      ...(lease !== undefined && { lease: text_(lease, 'lease') }),
    };
    kvs.set(text_(kv['key'], 'key'), stored);
  }
  const leases = new Map<string, StoredLease>();
  for (const item of array(file['leases'], 'leases')) {
    const lease = record(item, 'a lease');
    leases.set(text_(lease['id'], 'lease id'), {
      ttlSeconds: count(lease['ttlSeconds'], 'ttlSeconds'),
      expiresAt: count(lease['expiresAt'], 'expiresAt'),
    });
  }
  const history: HistoryEntry[] = array(file['history'], 'history').map((item) => {
    const entry = record(item, 'a history entry');
    const at = count(entry['revision'], 'history revision');
    const events = array(entry['events'], 'events').map((e): WatchEvent => {
      const event = record(e, 'an event');
      const key = text_(event['key'], 'event key');
      if (event['type'] === 'delete') return { type: 'delete', key, modRevision: at };
      if (event['type'] === 'put') return { type: 'put', kv: { key, value: text_(event['value'], 'event value'), modRevision: at } };
      throw new CorruptStateError('an event is neither put nor delete');
    });
    return { revision: at, events };
  });
  const parts = {
    storeId: text_(file['storeId'], 'storeId'),
    revision,
    compactRevision: count(file['compactRevision'], 'compactRevision'),
    kvs,
    leases,
    history,
  };
  return new KvState(parts, historyLimit);
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CorruptStateError(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function array(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new CorruptStateError(`${what} is not a list`);
  return value as unknown[];
}

function text_(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new CorruptStateError(`${what} is not a string`);
  return value;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CorruptStateError(`${what} is not a whole number`);
  }
  return value;
}

// Small file-system helpers

function identityOf(s: BigIntStats): FileIdentity {
  return { dev: s.dev, ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

async function readLock(
  path: string,
): Promise<{ pid: number; namespace: string; identity: FileIdentity } | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const identity = identityOf(await handle.stat({ bigint: true }));
    const [pid = '', namespace = ''] = (await handle.readFile('utf8')).trim().split(/\s+/);
    return { pid: Number(pid), namespace, identity };
  } finally {
    await handle.close();
  }
}

async function writeSmallFile(path: string, content: string, flags = 'w'): Promise<void> {
  const handle = await open(path, flags, 0o644);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

let ownPidNamespace: Promise<string> | undefined;

/** "pid:[4026531836]" on Linux: two processes' pids are comparable only within one namespace. */
function pidNamespace(): Promise<string> {
  // Not Linux, or no /proc: one namespace assumed.
  ownPidNamespace ??= readlink('/proc/self/ns/pid').catch(() => 'unknown');
  return ownPidNamespace;
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) === 'EPERM'; // exists, owned by someone else
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}
