/**
 * The cluster sync: one list of the whole /sluice/v1/ prefix into the view,
 * then one watch from there. A broken watch (etcd restarted or compacted)
 * comes back to a fresh list, after a random wait so that every agent of a
 * large cluster does not list at once.
 */
import createDebug from 'debug';
import { ROOT } from '../store/keys';
import type { Store, Watch } from '../store/store';
import { sleep, type Clock } from '../util/clock';
import type { Reporter } from './reporter';
import { ClusterView } from './view';

const debug = createDebug('sluice:agent');

/** Re-lists after a broken watch are spread over this much per node in the cluster, up to the cap. */
const RELIST_SPREAD_PER_NODE_MS = 10;
const RELIST_SPREAD_MAX_MS = 2000;

/**
 * How long to wait before re-listing after a broken watch. etcd restarting or compacting breaks
 * every agent's watch at once; a random wait in a window that grows with the cluster spreads their
 * lists out (a second for 100 nodes, 2 s from 200 on) instead of all hitting etcd together.
 */
export function relistDelayMs(nodes: number, random: number): number {
  return Math.floor(random * Math.min(RELIST_SPREAD_MAX_MS, nodes * RELIST_SPREAD_PER_NODE_MS));
}

export interface SyncHandlers {
  /** The view changed in something the desired state depends on; `seen`: when the change arrived (hrtime). */
  changed(seen: bigint): void;
  /** The view was replaced by a fresh list. */
  listed(): void;
  /** After a re-list that followed a broken watch: bring the kernel in line with it. */
  relisted(): Promise<void>;
}

export class ClusterSync {
  readonly view = new ClusterView();
  /** A list is in the view: the desired state can be derived (even while a broken watch waits for its re-list). */
  listed = false;
  /** The watch broke and no re-list has succeeded since. */
  private broken = false;
  private recovering = false;
  private watch: Watch | undefined;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly reporter: Reporter,
    private readonly handlers: SyncHandlers,
    private readonly random: () => number,
    private readonly stopped: () => boolean,
  ) {}

  /** Lists the whole cluster and watches from there. */
  async list(): Promise<void> {
    await this.watch?.close();
    const { kvs, revision } = await this.store.list(ROOT);
    this.view.reset(kvs);
    this.listed = true;
    this.broken = false;
    this.handlers.listed();
    this.watch = this.store.watch(ROOT, revision + 1, {
      onEvents: (events) => {
        const seen = process.hrtime.bigint();
        // Address claims, liveness renewals and the like change nothing this host enforces: they cost nothing.
        if (this.view.apply(events)) this.handlers.changed(seen);
      },
      onReset: (reason) => {
        debug('watch reset: %s', reason);
        this.broken = true;
        void this.recover(true);
      },
    });
  }

  /**
   * Re-lists if the watch is broken and nobody is at it: after a reset (`spread`: wait a random
   * while first), and on the resync timer in case a re-list gave up on a bug.
   */
  async recover(spread = false): Promise<void> {
    if (!this.broken || this.recovering) return;
    this.recovering = true;
    try {
      if (spread) await sleep(this.clock, relistDelayMs(this.view.nodes.size, this.random()));
      await this.reporter.retryUntil(
        're-list',
        async () => {
          await this.list();
          await this.handlers.relisted();
        },
        this.stopped,
      );
    } catch {
      // Reported by retryUntil; the resync timer tries again.
    } finally {
      this.recovering = false;
    }
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }
}
