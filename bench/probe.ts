// Drives bench/prober.ts in a container's network namespace and reads its probes.
import * as path from 'node:path';
import { containerCommand } from './labs';
import { matches, type Want } from './outcome';
import { Background } from './proc';

export interface Probe {
  start: number;
  ms: number;
  outcome: string;
}

const PROBER = path.join(__dirname, 'prober.js');

export class Prober {
  private constructor(private readonly proc: Background) {}

  /** Starts a prober in the network namespace of the container with this pid. */
  static open(containerPid: string): Prober {
    const [cmd, args] = containerCommand(containerPid, [process.execPath, PROBER]);
    return new Prober(new Background(`prober in ${containerPid}`, cmd, args));
  }

  /** Begins a connect attempt every intervalMs to host:port, each given up after timeoutMs. */
  async start(host: string, port: number, intervalMs = 5, timeoutMs = 300): Promise<void> {
    const reply = JSON.parse(await this.proc.request(JSON.stringify({ cmd: 'start', host, port, intervalMs, timeoutMs }), 10_000)) as { ok?: boolean; error?: string };
    if (reply.ok !== true) throw new Error(`prober: ${reply.error ?? 'did not start'}`);
  }

  /**
   * Stops probing; resolves with every attempt once all have ended, in start order. With
   * `until`, first waits (at most maxMs) for an attempt that ended as `until.want` says,
   * then probes settleMs longer.
   */
  async stop(until?: { want: Want; settleMs: number; maxMs: number }): Promise<Probe[]> {
    const timeoutMs = 10_000 + (until?.maxMs ?? 0) + (until?.settleMs ?? 0);
    const reply = JSON.parse(await this.proc.request(JSON.stringify({ cmd: 'stop', until: until?.want, settleMs: until?.settleMs, maxMs: until?.maxMs }), timeoutMs)) as {
      probes?: [number, number, string][];
      error?: string;
    };
    if (reply.probes === undefined) throw new Error(`prober: ${reply.error ?? 'no probes'}`);
    return reply.probes.map(([start, ms, outcome]) => ({ start, ms, outcome }));
  }

  close(): Promise<void> {
    return this.proc.stop();
  }
}

/**
 * The first attempt (by start time) whose outcome is what `want` says, and how many attempts
 * started after it did not see that (flaps: the change did not take at once).
 */
export function firstMatch(probes: readonly Probe[], want: Want): { first?: Probe; flaps: number } {
  const index = probes.findIndex((p) => matches(p.outcome, want));
  if (index < 0) return { flaps: 0 };
  const flaps = probes.slice(index + 1).filter((p) => !matches(p.outcome, want)).length;
  return { first: probes[index], flaps };
}
