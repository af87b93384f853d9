// Drives bench/prober.ts in a container's network namespace and reads its probes.
import * as path from 'node:path';
import { containerCommand } from './labs';
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

  /** Stops probing; resolves with every attempt once all have ended, in start order. */
  async stop(): Promise<Probe[]> {
    const reply = JSON.parse(await this.proc.request(JSON.stringify({ cmd: 'stop' }), 10_000)) as { probes?: [number, number, string][]; error?: string };
    if (reply.probes === undefined) throw new Error(`prober: ${reply.error ?? 'no probes'}`);
    return reply.probes.map(([start, ms, outcome]) => ({ start, ms, outcome }));
  }

  close(): Promise<void> {
    return this.proc.stop();
  }
}

/**
 * The first attempt (by start time) whose outcome is `open === wantOpen`, and how many
 * attempts started after it still saw the old outcome (flaps: the change was not clean).
 */
export function firstFlip(probes: readonly Probe[], wantOpen: boolean): { first?: Probe; flaps: number } {
  const index = probes.findIndex((p) => (p.outcome === 'open') === wantOpen);
  if (index < 0) return { flaps: 0 };
  const flaps = probes.slice(index + 1).filter((p) => (p.outcome === 'open') !== wantOpen).length;
  return { first: probes[index], flaps };
}

/** Polls `start … stop` windows until one of `timeoutMs` sees the wanted outcome. */
export async function probeUntil(prober: Prober, host: string, port: number, wantOpen: boolean, timeoutMs: number): Promise<Probe[]> {
  const all: Probe[] = [];
  await prober.start(host, port);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const done = Date.now() > deadline;
    if (done) all.push(...(await prober.stop()));
    else continue;
    return all;
  }
}
