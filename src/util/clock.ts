/** Time, injected so that tests can advance it by hand. */
export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels the call. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** Real time. Its timers are housekeeping: they never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const timer = setTimeout(fn, ms).unref();
    return () => clearTimeout(timer);
  },
};
