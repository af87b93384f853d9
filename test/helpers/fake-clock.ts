import type { Clock } from '../../src/util/clock';

/** Time that moves only when the test says so; due timers run in time order. */
export class FakeClock implements Clock {
  private time: number;
  private timers: { at: number; fn: () => void }[] = [];

  constructor(start = Date.parse('2026-11-27T12:00:00Z')) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /** A timer already due (0 ms) runs on its own, as soon as the work at hand yields: no time needs to pass. */
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.time + ms, fn };
    this.timers.push(timer);
    const cancel = (): void => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
    if (ms <= 0) {
      setImmediate(() => {
        if (!this.timers.includes(timer)) return;
        cancel();
        fn();
      });
    }
    return cancel;
  }

  /**
   * Moves time on by `ms`, running each timer that falls due on the way and
   * letting the work it starts run (and set its next timers) before the next one.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = target;
  }

  get pending(): number {
    return this.timers.length;
  }
}

/** Lets every promise chain that is ready run, stores' watch deliveries included. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(setImmediate);
}
