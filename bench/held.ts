// Bookkeeping of the scale scenario: when each store write was made, when each simulated host held
// it, and what a process's CPU did meanwhile. Pure: the processes only collect the times.

/** A write as every host sees it come: "put KEY" or "delete KEY" (the churn writes each at most once). */
export function eventId(type: 'put' | 'delete', key: string): string {
  return `${type} ${key}`;
}

export interface Spread {
  /** Per write that every host held: when the last one held it, after the write. */
  toAll: number[];
  /** Per host and write: when that host held it, after the write. */
  each: number[];
  /** Writes some host never held. */
  missed: number;
}

/**
 * How the writes spread: `writes` by event ID → when it was written; `held` by event ID → when
 * each host held it (one time per host, from every process merged); `hosts` → how many there are.
 * Events that were not written in the window are not counted.
 */
export function spread(writes: ReadonlyMap<string, number>, held: ReadonlyMap<string, readonly number[]>, hosts: number): Spread {
  const result: Spread = { toAll: [], each: [], missed: 0 };
  for (const [id, writtenAt] of writes) {
    const times = held.get(id) ?? [];
    for (const at of times) result.each.push(at - writtenAt);
    if (times.length < hosts) result.missed++;
    else result.toAll.push(Math.max(...times) - writtenAt);
  }
  return result;
}

/** A process's CPU time (ms) used by `at` (ms). */
export interface Mark {
  at: number;
  cpuMs: number;
}

/**
 * CPU (ms) per change between `start` and `end`, less what the process used at rest: its rate
 * between `idle` and `start`, over as long.
 */
export function cpuPerChange(idle: Mark, start: Mark, end: Mark, changes: number): number {
  if (changes <= 0) throw new Error(`CPU per change of ${changes} changes`);
  const restRate = (start.cpuMs - idle.cpuMs) / (start.at - idle.at);
  return (end.cpuMs - start.cpuMs - restRate * (end.at - start.at)) / changes;
}

/** Share of one core used between two marks. */
export function coreShare(start: Mark, end: Mark): number {
  return (end.cpuMs - start.cpuMs) / (end.at - start.at);
}
