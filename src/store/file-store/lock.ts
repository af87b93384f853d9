/**
 * The lock protocol of the state file: writes run under `<path>.lock`,
 * created atomically and holding "PID PID-NAMESPACE". A lock whose process is
 * dead (or that is older than any write could take) is stale and broken, by
 * one process at a time.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readlink, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StoreUnavailableError } from '../../errors';
import { errorCode, identityOf, sameFile, writeSmallFile, type FileIdentity } from './files';

/** No write holds the lock this long; an older lock is left by a process we cannot see (another pid namespace). */
const STALE_LOCK_MS = 30_000;
/** A lock breaker dies between two syscalls only by kill -9; its guard file is then this old. */
const STALE_GUARD_MS = 2_000;

export class FileLock {
  readonly path: string;

  /** `description` names the store in the message of a lock that stays taken. */
  constructor(
    statePath: string,
    private readonly description: string,
    private readonly timeoutMs: number,
  ) {
    this.path = `${statePath}.lock`;
  }

  async acquire(): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    const owner = `${process.pid} ${await pidNamespace()}\n`;
    for (;;) {
      // Written in full under another name, then linked: the lock never exists without its owner.
      const candidate = `${this.path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await writeSmallFile(candidate, owner);
        await link(candidate, this.path);
        return;
      } catch (err) {
        if (errorCode(err) === 'ENOENT') {
          await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
          continue;
        }
        if (errorCode(err) !== 'EEXIST') throw err;
      } finally {
        await unlink(candidate).catch(() => undefined);
      }
      const holder = await this.liveHolder();
      if (holder === undefined) continue; // released, or stale and broken: try again at once
      if (Date.now() >= deadline) {
        throw new StoreUnavailableError(
          `${this.description} stayed locked by ${holder} for ${this.timeoutMs / 1000}s: ` +
            `if no sluice process is using the file, remove ${this.path}`,
        );
      }
      await sleep(5 + Math.random() * 15);
    }
  }

  async release(): Promise<void> {
    await unlink(this.path).catch(() => undefined);
  }

  /** Removes half-taken locks of crashed processes; call while holding the lock. */
  async removeLeftovers(): Promise<void> {
    const dir = dirname(this.path);
    for (const name of await readdir(dir)) {
      if (!name.startsWith(`${basename(this.path)}.new-`)) continue;
      // Old enough not to be one being taken now.
      const age = await stat(join(dir, name)).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > STALE_LOCK_MS) await unlink(join(dir, name)).catch(() => undefined);
    }
  }

  /** Describes the process holding the lock, or breaks a stale lock and returns undefined. */
  private async liveHolder(): Promise<string | undefined> {
    const lock = await readLock(this.path);
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
    const guard = `${this.path}.break`;
    try {
      await writeSmallFile(guard, `${process.pid}\n`, 'wx');
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      const age = await stat(guard).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age <= STALE_GUARD_MS) return false;
      await unlink(guard).catch(() => undefined);
      return true;
    }
    try {
      const lock = await readLock(this.path);
      if (lock && sameFile(lock.identity, stale)) await unlink(this.path).catch(() => undefined);
      return true;
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }
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

let ownPidNamespace: Promise<string> | undefined;

/** "pid:[4026531836]" on Linux: two processes' pids are comparable only within one namespace. */
function pidNamespace(): Promise<string> {
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}
