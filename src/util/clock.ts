/**
 * Time as a dependency. The agent and the memory store read the time and wait
 * through a Clock: production uses the system's, unit tests a fake one they
 * advance by hand (test/helpers/fake-clock.ts), so no test sleeps for real.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels the call. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}

/** Calls `task` every `ms` until the returned function is called. */
export function every(clock: Clock, ms: number, task: () => void): () => void {
  let cancel = clock.setTimer(function tick() {
    cancel = clock.setTimer(tick, ms);
    task();
  }, ms);
  return () => cancel();
}
