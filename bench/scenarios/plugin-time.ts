// The plugin's own time per container start: CreateEndpoint + Join as the agent's API trace
// (DEBUG=sluice:api) times them, from the request's arrival to the reply; and per run/rm cycle,
// every plugin call of it (IPAM ones included) summed. plugin-time-tls: the
// same on a host whose etcd wants TLS and client certificates, against a plain one, interleaved.
// plugin-time-scraped: the same with /metrics fetched every second, against no scraping.
// plugin-time-dual: the same on a dual-stack network, against an IPv4-only one, interleaved.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../../test/helpers/lab';
import { LAB_SCRIPT } from '../../test/helpers/lab';
import { IMAGE, NET, agentLog, dockerOk, timedDocker } from '../labs';
import { runOk } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const STARTS = 60;
const TRACE = /sluice:api POST \/(?:NetworkDriver|IpamDriver)\.(\w+) -> 200 in ([\d.]+) ms/;

/** One answered plugin call, as the trace times it. */
export interface Call {
  method: string;
  ms: number;
}

/**
 * The calls of each `docker run --rm` cycle, in order: a cycle starts with the container's first
 * RequestAddress (cycles run one after another) and holds everything up to the next container's,
 * so a call that trails its cycle still counts, in the next one, and no call is counted twice.
 * A container's addresses (one per family) are all requested before its CreateEndpoint, so a
 * RequestAddress starts a new cycle only once the current one has had its CreateEndpoint.
 */
export function cycles(calls: readonly Call[]): Call[][] {
  const out: Call[][] = [];
  for (const call of calls) {
    const current = out.at(-1);
    if (call.method === 'RequestAddress' && (current === undefined || current.some((c) => c.method === 'CreateEndpoint'))) out.push([]);
    out.at(-1)?.push(call);
  }
  return out;
}

function sum(calls: readonly Call[]): number {
  return calls.reduce((total, c) => total + c.ms, 0);
}

/** Where a cycle's time goes: each method's p50, summed per cycle, in the order Docker calls them. */
function methodP50s(perCycle: readonly Call[][]): [method: string, p50: number][] {
  const methods = [...new Set(perCycle.flat().map((c) => c.method))];
  return methods.map((method) => [method, percentile(perCycle.map((calls) => sum(calls.filter((c) => c.method === method))), 50)]);
}

/** Restarts a host's agent with extra environment (lab.sh passes its own on to the agent). */
async function restartAgent(lab: Lab, host: string, env: NodeJS.ProcessEnv): Promise<void> {
  await lab.agentStop(host);
  await runOk('bash', [LAB_SCRIPT, '--lab', lab.name, 'agent-start', host], 60_000, { ...process.env, ...env });
}

/**
 * Per start CreateEndpoint+Join, and each cycle's calls, from the calls of blocks of starts
 * (cycles never span two blocks); `where` names the trace in errors.
 */
function startTimes(blocks: readonly (readonly Call[])[], starts: number, where: string): { perStart: number[]; cycles: Call[][] } {
  const of = (method: string) => blocks.flat().filter((c) => c.method === method).map((c) => c.ms);
  const [create, join] = [of('CreateEndpoint'), of('Join')];
  // Starts run one after another, so the n-th CreateEndpoint and the n-th Join are one container's.
  if (create.length !== starts || join.length !== starts) {
    throw new Error(`expected ${starts} CreateEndpoint and Join lines in ${where}, found ${create.length} and ${join.length}`);
  }
  return { perStart: create.map((ms, i) => ms + join[i]!), cycles: blocks.flatMap(cycles) };
}

/** A lab's h1 whose agent traces its API; `start` runs one container, `times` reads the trace since open(). */
class TracedHost {
  private offset = 0;

  private constructor(private readonly lab: Lab) {}

  static async open(lab: Lab): Promise<TracedHost> {
    await restartAgent(lab, 'h1', { DEBUG: 'sluice:api' });
    const host = new TracedHost(lab);
    await host.start(); // the first start after a restart reads the kernel's firewall
    host.offset = host.mark();
    return host;
  }

  start(net = NET): Promise<number> {
    return timedDocker(this.lab, 'h1', 'run', '--rm', '--net', net, IMAGE, 'true');
  }

  /** Where the trace ends now: calls(mark) reads only what comes after. */
  mark(): number {
    return statSync(this.log).size;
  }

  /** The calls traced since a mark, by default since open(). */
  calls(since = this.offset): Call[] {
    const calls: Call[] = [];
    for (const line of readFileSync(this.log).subarray(since).toString('utf8').split('\n')) {
      const match = TRACE.exec(line);
      if (match) calls.push({ method: match[1]!, ms: Number(match[2]) });
    }
    return calls;
  }

  /** Per start since open(): CreateEndpoint+Join, and each cycle's calls. */
  times(starts: number): { perStart: number[]; cycles: Call[][] } {
    return startTimes([this.calls()], starts, this.log);
  }

  close(): Promise<void> {
    return restartAgent(this.lab, 'h1', {});
  }

  private get log(): string {
    return agentLog(this.lab, 'h1');
  }
}

export const pluginTime: Scenario = {
  name: 'plugin-time',
  labs: ['one'],
  async run(ctx) {
    const host = await TracedHost.open(await ctx.lab('one'));
    try {
      for (let i = 0; i < STARTS; i++) await host.start();
      const { perStart, cycles: perCycle } = host.times(STARTS);
      ctx.add(figure('plugin-time', `CreateEndpoint+Join p50 (${STARTS} starts)`, percentile(perStart, 50), 'ms', { op: '<=', limit: 8 }));
      ctx.add(figure('plugin-time', 'CreateEndpoint+Join p99', percentile(perStart, 99), 'ms'));
      ctx.add(figure('plugin-time', 'whole run/rm cycle, every plugin call summed, p50', percentile(perCycle.map(sum), 50), 'ms', { op: '<=', limit: 25 }));
      ctx.add(figure('plugin-time', 'whole run/rm cycle p99', percentile(perCycle.map(sum), 99), 'ms'));
      for (const [method, p50] of methodP50s(perCycle)) ctx.add(figure('plugin-time', `${method} p50 (summed per cycle)`, p50, 'ms'));
    } finally {
      await host.close();
    }
  },
};

export const pluginTimeTls: Scenario = {
  name: 'plugin-time-tls',
  labs: ['one', 'oneTls'],
  async run(ctx) {
    const plain = await TracedHost.open(await ctx.lab('one'));
    const tls = await TracedHost.open(await ctx.lab('oneTls'));
    try {
      for (let i = 0; i < STARTS; i++) {
        await plain.start();
        await tls.start();
      }
      const plainP50 = percentile(plain.times(STARTS).perStart, 50);
      const tlsP50 = percentile(tls.times(STARTS).perStart, 50);
      ctx.add(figure('plugin-time-tls', `CreateEndpoint+Join p50, plain etcd (${STARTS} starts, interleaved)`, plainP50, 'ms'));
      ctx.add(figure('plugin-time-tls', 'CreateEndpoint+Join p50, etcd with TLS and client certificates', tlsP50, 'ms'));
      ctx.add(figure('plugin-time-tls', 'p50 ratio TLS/plain', tlsP50 / plainP50, 'ratio', { op: '<=', limit: 1.1 }));
    } finally {
      await plain.close();
      await tls.close();
    }
  },
};

const BLOCKS = 6;
const STARTS_PER_BLOCK = 10;
/** Starts on each side of an interleaved comparison. */
const SIDE_STARTS = (BLOCKS * STARTS_PER_BLOCK) / 2;

/**
 * BLOCKS blocks of starts, `block(second)` running one, alternating between a first and a second
 * side, so a machine getting busier or quieter meets both alike. Resolves with each side's
 * blocks, each block's calls in order.
 */
async function interleaved(host: TracedHost, block: (second: boolean) => Promise<void>): Promise<[first: Call[][], second: Call[][]]> {
  const sides: [Call[][], Call[][]] = [[], []];
  for (let i = 0; i < BLOCKS; i++) {
    const since = host.mark();
    await block(i % 2 === 1);
    sides[i % 2]!.push(host.calls(since));
  }
  return sides;
}

async function startBlock(host: TracedHost, net = NET): Promise<void> {
  for (let i = 0; i < STARTS_PER_BLOCK; i++) await host.start(net);
}

/**
 * Runs `work` while h1's /metrics is fetched every second from h1's own namespace (as Prometheus
 * would), the scraper bounded to 10 minutes and killed with its whole process group afterwards.
 * Resolves with what `work` gave and how many scrapes got an answer meanwhile.
 */
async function scraped<T>(lab: Lab, work: () => Promise<T>): Promise<{ result: T; scrapes: number }> {
  const url = `http://${await lab.hostIp('h1')}:9453/metrics`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-scrapes-'));
  const answered = path.join(dir, 'answered');
  const loop = `for i in $(seq 600); do wget -q -O /dev/null ${url} && echo >> ${answered}; sleep 1; done`;
  const scraper = spawn('bash', [LAB_SCRIPT, '--lab', lab.name, 'exec', 'h1', 'sh', '-c', loop], { detached: true, stdio: 'ignore' });
  try {
    const result = await work();
    return { result, scrapes: existsSync(answered) ? readFileSync(answered, 'utf8').length : 0 };
  } finally {
    if (scraper.pid !== undefined) process.kill(-scraper.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export const pluginTimeScraped: Scenario = {
  name: 'plugin-time-scraped',
  labs: ['one'],
  async run(ctx) {
    const lab = await ctx.lab('one');
    const host = await TracedHost.open(lab);
    try {
      let scrapes = 0;
      const [quietCalls, busyCalls] = await interleaved(host, async (withScraper) => {
        if (withScraper) scrapes += (await scraped(lab, () => startBlock(host))).scrapes;
        else await startBlock(host);
      });
      const quiet = percentile(startTimes(quietCalls, SIDE_STARTS, 'the blocks not scraped').perStart, 50);
      const busy = percentile(startTimes(busyCalls, SIDE_STARTS, 'the scraped blocks').perStart, 50);
      ctx.add(figure('plugin-time-scraped', `CreateEndpoint+Join p50, metrics not scraped (${SIDE_STARTS} starts)`, quiet, 'ms'));
      ctx.add(figure('plugin-time-scraped', 'CreateEndpoint+Join p50, /metrics scraped every second', busy, 'ms'));
      ctx.add(figure('plugin-time-scraped', 'p50 ratio scraped/not scraped', busy / quiet, 'ratio', { op: '<=', limit: 1.02 }));
      // A scraper that never got an answer would make the ratio meaningless.
      ctx.add(figure('plugin-time-scraped', 'scrapes answered during the scraped blocks', scrapes, 'count', { op: '>=', limit: 1 }));
    } finally {
      await host.close();
    }
  },
};

/** The dual-stack network of plugin-time-dual, beside the lab's IPv4-only NET. */
const DUAL_NET = 'appnet-dual';
const DUAL_SUBNETS = ['10.97.0.0/16', 'fd00:97::/64'];

export const pluginTimeDual: Scenario = {
  name: 'plugin-time-dual',
  labs: ['one'],
  async run(ctx) {
    const lab = await ctx.lab('one');
    const subnets = DUAL_SUBNETS.flatMap((subnet) => ['--subnet', subnet]);
    await dockerOk(lab, 'h1', 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--ipv6', ...subnets, DUAL_NET);
    try {
      const host = await TracedHost.open(lab);
      try {
        const [v4Calls, dualCalls] = await interleaved(host, (dual) => startBlock(host, dual ? DUAL_NET : NET));
        const v4 = startTimes(v4Calls, SIDE_STARTS, 'the IPv4-only blocks');
        const dual = startTimes(dualCalls, SIDE_STARTS, 'the dual-stack blocks');
        // One address per family: a dual cycle with fewer would be timing an IPv4-only start.
        const singles = dual.cycles.filter((calls) => calls.filter((c) => c.method === 'RequestAddress').length !== 2).length;
        if (singles > 0) throw new Error(`${singles} dual-stack starts did not request two addresses`);
        const p50 = (values: number[]) => percentile(values, 50);
        const [v4Start, dualStart] = [p50(v4.perStart), p50(dual.perStart)];
        const [v4Cycle, dualCycle] = [p50(v4.cycles.map(sum)), p50(dual.cycles.map(sum))];
        ctx.add(figure('plugin-time-dual', `CreateEndpoint+Join p50, IPv4-only (${SIDE_STARTS} starts, interleaved)`, v4Start, 'ms'));
        ctx.add(figure('plugin-time-dual', 'CreateEndpoint+Join p50, dual-stack', dualStart, 'ms'));
        ctx.add(figure('plugin-time-dual', 'CreateEndpoint+Join p50 ratio dual/IPv4', dualStart / v4Start, 'ratio', { op: '<=', limit: 1.1 }));
        ctx.add(figure('plugin-time-dual', 'whole run/rm cycle p50, IPv4-only', v4Cycle, 'ms'));
        ctx.add(figure('plugin-time-dual', 'whole run/rm cycle p50, dual-stack (two RequestAddress, two ReleaseAddress)', dualCycle, 'ms'));
        ctx.add(figure('plugin-time-dual', 'whole run/rm cycle p50 ratio dual/IPv4', dualCycle / v4Cycle, 'ratio', { op: '<=', limit: 1.1 }));
        // Where the difference goes: each method's p50 (summed per cycle), dual-stack minus IPv4-only.
        const v4Methods = new Map(methodP50s(v4.cycles));
        for (const [method, p50] of methodP50s(dual.cycles)) {
          ctx.add(figure('plugin-time-dual', `${method} p50, dual-stack minus IPv4-only`, p50 - (v4Methods.get(method) ?? 0), 'ms'));
        }
      } finally {
        await host.close();
      }
    } finally {
      await dockerOk(lab, 'h1', 'network', 'rm', DUAL_NET);
    }
  },
};
