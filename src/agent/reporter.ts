/**
 * Errors you can see. Work nobody waits for (timers, watch callbacks, retry
 * loops) hands its failures here: each is logged whatever DEBUG says, at most
 * once a minute per kind of work so a long outage does not flood the log, and
 * the latest is reported with the node's liveness for `sluice status`. A bug
 * (not one of Sluice's errors) is logged with its stack, and a retry loop gives
 * up on it at once instead of retrying it forever.
 */
import { errorMessage, isBug, isTransient } from '../errors';
import type { NodeRecord } from '../model';
import { sleep, type Clock } from '../util/clock';

const REPORT_INTERVAL_MS = 60_000;
export const RETRY_MS = 1000;

export class Reporter {
  /** The latest failure, for the node record. */
  lastError: NodeRecord['lastError'];
  /** When each kind of work last logged a failure. */
  private readonly logged = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {}

  /** A failure of `what`; `retrying` when a loop tries it again. */
  report(what: string, err: unknown, retrying = false): void {
    const now = this.clock.now();
    const message = `${what}${retrying ? ' failed' : ''}: ${errorMessage(err)}`;
    this.lastError = { at: new Date(now).toISOString(), message };
    if (now - (this.logged.get(what) ?? -Infinity) < REPORT_INTERVAL_MS) return;
    this.logged.set(what, now);
    const stack = isBug(err) && err instanceof Error && err.stack ? `\n${err.stack}` : '';
    this.log(`sluice agent: ${message}${retrying ? '; retrying' : ''}${stack}`);
  }

  /**
   * Runs `work` until it succeeds or `stopped()`, a second apart, while it fails
   * transiently (the store, dockerd or the kernel away for a while). Any other
   * failure is reported and rejects at once.
   */
  async retryUntil(what: string, work: () => Promise<void>, stopped: () => boolean): Promise<void> {
    while (!stopped()) {
      try {
        await work();
        return;
      } catch (err) {
        if (!isTransient(err)) {
          this.report(what, err);
          throw err;
        }
        this.report(what, err, true);
        await sleep(this.clock, RETRY_MS);
      }
    }
  }
}
