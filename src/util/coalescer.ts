/**
 * Runs `work` one at a time and folds concurrent requests into one run: a
 * caller gets a promise for the first run that starts after its request, so
 * it sees every change made before the call, and 50 concurrent joins cost a
 * handful of kernel applies, not 50.
 */
export class Coalescer {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly work: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.queued) return this.queued;
    const before = this.running ?? Promise.resolve();
    const next: Promise<void> = before
      // The run before failed for its own callers: this one starts all the same.
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        this.running = next;
        return this.work();
      })
      .finally(() => {
        if (this.running === next) this.running = undefined;
      });
    this.queued = next;
    return next;
  }
}
