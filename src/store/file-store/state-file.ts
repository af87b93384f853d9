/**
 * The state file on disk. A write goes to a temp file in the same directory,
 * which is fsynced, renamed over the state file, and the directory fsynced:
 * a kill -9 at any moment leaves either the old or the new file, never a torn
 * one.
 */
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { KvState } from '../kv/state';
import { decodeState, encodeState } from './codec';
import { errorCode, identityOf, syncDirectory, type FileIdentity } from './files';

export class StateFile {
  private tempCounter = 0;

  constructor(readonly path: string) {}

  /** The identity of the file's current version; undefined if there is no file. */
  async identity(): Promise<FileIdentity | undefined> {
    try {
      return identityOf(await stat(this.path, { bigint: true }));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async read(historyLimit: number): Promise<{ state: KvState; identity: FileIdentity }> {
    const handle = await open(this.path, 'r');
    try {
      const identity = identityOf(await handle.stat({ bigint: true }));
      return { state: decodeState(await handle.readFile('utf8'), historyLimit), identity };
    } finally {
      await handle.close();
    }
  }

  /** Replaces the file with `state` as one whole version; returns that version's identity. */
  async write(state: KvState, now: number): Promise<FileIdentity> {
    const temp = `${this.path}.tmp-${process.pid}-${++this.tempCounter}`;
    try {
      const handle = await open(temp, 'w', 0o644);
      let identity: FileIdentity;
      try {
        await handle.writeFile(encodeState(state, now));
        await handle.sync();
        identity = identityOf(await handle.stat({ bigint: true }));
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await syncDirectory(dirname(this.path));
      return identity;
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }

  /** Temp files are only written under the lock, so any found while holding it were left by a crash. */
  async removeTempFiles(): Promise<void> {
    const dir = dirname(this.path);
    for (const name of await readdir(dir)) {
      if (name.startsWith(`${basename(this.path)}.tmp-`)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}
