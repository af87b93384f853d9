// The plugin's own time per container start: CreateEndpoint + Join as the agent's API trace
// (DEBUG=sluice:api) times them, from the request's arrival to the reply; and per run/rm cycle,
// every plugin call of it (IPAM ones included) summed. plugin-time-tls: the
// same on a host whose etcd wants TLS and client certificates, against a plain one, interleaved.
// plugin-time-scraped: the same with /metrics fetched every second, against no scraping.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../../test/helpers/lab';
import { LAB_SCRIPT } from '../../test/helpers/lab';
import { IMAGE, NET, agentLog, timedDocker } from '../labs';
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
 * The calls of each `docker run --rm` cycle, in order: a cycle starts with the container's
 * RequestAddress (cycles run one after another) and holds everything up to the next one, so a
 * call that trails its cycle still counts, in the next one, and no call is counted twice.
 */
export function cycles(calls: readonly Call[]): Call[][] {
  const out: Call[][] = [];
  for (const call of calls) {
    if (call.method === 'RequestAddress') out.push([]);
    out.at(-1)?.push(call);
  }
  return out;
}

function sum(calls: readonly Call[]): number {
  return calls.reduce((total, c) => total + c.ms, 0);
}

/** Restarts a host's agent with extra environment (lab.sh passes its own on to the agent). */
async function restartAgent(lab: Lab, host: string, env: NodeJS.ProcessEnv): Promise<void> {
  await lab.agentStop(host);
  await runOk('bash', [LAB_SCRIPT, '--lab', lab.name, 'agent-start', host], 60_000, { ...process.env, ...env });
}

/** A lab's h1 whose agent traces its API; `start` runs one container, `times` reads the trace since `traced`. */
class TracedHost {
  private offset = 0;

  private constructor(private readonly lab: Lab) {}

  static async open(lab: Lab): Promise<TracedHost> {
    await restartAgent(lab, 'h1', { DEBUG: 'sluice:api' });
    const host = new TracedHost(lab);
    await host.start(); // the first start after a restart reads the kernel's firewall
    host.offset = statSync(agentLog(lab, 'h1')).size;
    return host;
  }

  start(): Promise<number> {
    return timedDocker(this.lab, 'h1', 'run', '--rm', '--net', NET, IMAGE, 'true');
  }

  /** Per start since open(): CreateEndpoint, Join, their sum, and each cycle's calls. */
  times(starts: number): { create: number[]; join: number[]; perStart: number[]; cycles: Call[][] } {
    const log = agentLog(this.lab, 'h1');
    const calls: Call[] = [];
    for (const line of readFileSync(log, 'utf8').slice(this.offset).split('\n')) {
      const match = TRACE.exec(line);
      if (match) calls.push({ method: match[1]!, ms: Number(match[2]) });
    }
    const of = (method: string) => calls.filter((c) => c.method === method).map((c) => c.ms);
    const [create, join] = [of('CreateEndpoint'), of('Join')];
    // Starts run one after another, so the n-th CreateEndpoint and the n-th Join are one container's.
    if (create.length !== starts || join.length !== starts) {
      throw new Error(`expected ${starts} CreateEndpoint and Join lines in ${log}, found ${create.length} and ${join.length}`);
    }
    return { create, join, perStart: create.map((ms, i) => ms + join[i]!), cycles: cycles(calls) };
  }

  close(): Promise<void> {
    return restartAgent(this.lab, 'h1', {});
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
      // Where a cycle's time goes: each method's share, in the order Docker calls them.
      const methods = [...new Set(perCycle.flat().map((c) => c.method))];
      for (const method of methods) {
        const perCall = perCycle.map((calls) => sum(calls.filter((c) => c.method === method)));
        ctx.add(figure('plugin-time', `${method} p50 (summed per cycle)`, percentile(perCall, 50), 'ms'));
      }
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

const SCRAPE_BLOCKS = 6;
const STARTS_PER_BLOCK = 10;

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
      // Blocks alternate, so a machine getting busier or quieter meets both alike.
      const scrapedBlock: boolean[] = [];
      let scrapes = 0;
      for (let block = 0; block < SCRAPE_BLOCKS; block++) {
        const starts = async (): Promise<void> => {
          for (let i = 0; i < STARTS_PER_BLOCK; i++) await host.start();
        };
        const withScraper = block % 2 === 1;
        if (withScraper) scrapes += (await scraped(lab, starts)).scrapes;
        else await starts();
        scrapedBlock.push(withScraper);
      }
      const { perStart } = host.times(SCRAPE_BLOCKS * STARTS_PER_BLOCK);
      const side = (wanted: boolean): number[] => perStart.filter((_, i) => scrapedBlock[Math.floor(i / STARTS_PER_BLOCK)] === wanted);
      const quiet = percentile(side(false), 50);
      const busy = percentile(side(true), 50);
      const n = (SCRAPE_BLOCKS * STARTS_PER_BLOCK) / 2;
      ctx.add(figure('plugin-time-scraped', `CreateEndpoint+Join p50, metrics not scraped (${n} starts)`, quiet, 'ms'));
      ctx.add(figure('plugin-time-scraped', 'CreateEndpoint+Join p50, /metrics scraped every second', busy, 'ms'));
      ctx.add(figure('plugin-time-scraped', 'p50 ratio scraped/not scraped', busy / quiet, 'ratio', { op: '<=', limit: 1.02 }));
      // A scraper that never got an answer would make the ratio meaningless.
      ctx.add(figure('plugin-time-scraped', 'scrapes answered during the scraped blocks', scrapes, 'count', { op: '>=', limit: 1 }));
    } finally {
      await host.close();
    }
  },
};
