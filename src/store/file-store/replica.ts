/**
 * This process's copy of the state file, held in the engine. It is read
 * again whenever the file changed (its identity: inode, size, mtime), and
 * changed only by writing the file first, under the lock, on the file's
 * newest version. Reads of the file and updates run one at a time, in order.
 */
import type { Clock } from '../../util/clock';
import type { KvEngine } from '../kv/engine';
import { KvState, newStoreId } from '../kv/state';
import { sameFile, type FileIdentity } from './files';
import type { FileLock } from './lock';
import type { StateFile } from './state-file';

export class FileReplica {
  /** Identity of the file version the engine holds; undefined while there is no file. */
  private loaded: FileIdentity | undefined;
  private chain: Promise<void> = Promise.resolve();
  private cleanedUp = false;

  constructor(
    private readonly file: StateFile,
    private readonly lock: FileLock,
    private readonly engine: KvEngine,
    private readonly clock: Clock,
    private readonly historyLimit: number,
  ) {}

  /** Loads the file into the engine if it is not the version the engine holds. */
  refresh(): Promise<void> {
    return this.serially(() => this.load());
  }

  /**
   * When its turn comes, asks `begin` for the change; applies it to a copy of
   * the file's newest state, at `now`, and if that changed anything, writes
   * the file and swaps the copy in.
   */
  update(begin: () => (next: KvState, now: number) => void): Promise<void> {
    return this.serially(async () => {
      const change = begin();
      await this.lock.acquire();
      try {
        await this.load();
        if (!this.cleanedUp) {
          this.cleanedUp = true;
          await this.file.removeTempFiles();
          await this.lock.removeLeftovers();
        }
        const now = this.clock.now();
        const next = this.engine.state.clone();
        if (next.storeId === '') next.storeId = newStoreId(); // the file's first write
        change(next, now);
        if (next.changed) {
          this.loaded = await this.file.write(next, now);
          this.engine.replace(next);
        }
      } finally {
        await this.lock.release();
      }
    });
  }

  /** Resolves once every read and update queued so far has run. */
  async settled(): Promise<void> {
    await this.chain;
  }

  private async load(): Promise<void> {
    const current = await this.file.identity();
    if (current === undefined) {
      if (this.loaded) {
        // Someone removed the file: the store starts again from nothing, and watches reset.
        this.loaded = undefined;
        this.engine.replace(KvState.empty('', this.historyLimit));
      }
      return;
    }
    if (this.loaded && sameFile(this.loaded, current)) return;
    const { state, identity } = await this.file.read(this.historyLimit);
    this.engine.replace(state);
    this.loaded = identity;
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
