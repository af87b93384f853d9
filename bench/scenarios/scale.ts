// Many hosts against one real etcd (issue 11): 100, 300 and 1,000 simulated hosts of 20 endpoints
// each, 200 policies, and a churn of container starts and stops (endpoint puts and deletes, as
// CreateEndpoint and DeleteEndpoint write them through the Registry) at 10 per second, and at 50
// per second with 1,000 hosts, to show where it saturates.
//
// What is real and what is simulated, on a 2-core machine: every simulated host holds its own etcd
// client, connection and watch of the whole /sluice/v1/ prefix, as an agent does, so etcd's fan-out
// is the real one. A thousand full agents each holding the cluster (~20 MB and a firewall compile
// per change apiece) do not fit on 2 cores, so only FULL_AGENTS of them (host-0000..) run the real
// Agent (cluster sync, desired state, applier) on a real EtcdStore, each in its own process, on a
// dataplane that keeps only the last state (no iptables: the figures are the agent's own work),
// with Node's options from bin/sluice;
// the others are watchers in WATCHER_PROCESSES processes that only note when each event arrives.
// The churn falls on the watchers' hosts only: to the full agents every change is a remote one.
// The full agents run at a lower priority (nice 10): on a real cluster each has a host of its own
// and etcd its own machine, so agents that saturate these 2 cores slow their own applies (their
// latency here is an upper bound), not etcd's fan-out or the other hosts' watches.
//
// Figures per row: write → every host holds it (a watcher: its watch delivered it; a full agent:
// a firewall compiled from a view with it was applied), p50 / p99 / max over the writes; full
// agents' CPU per remote change (process CPU in the window, less the rate at rest, per write);
// agent RSS and start (list + first apply); etcd's CPU, RSS and database size; and the CPU of the
// watcher processes, which share the 2 cores: when they saturate, the latency is the bench's too.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { keys } from '../../src/store/keys';
import { Registry } from '../../src/store/registry';
import { bigCluster, bigEndpoint, bigPolicies, writeAll } from '../../test/helpers/big-cluster';
import { startEtcd, type EtcdInstance } from '../../test/helpers/etcd';
import { findUp } from '../../test/helpers/lab';
import { coreShare, cpuPerChange, eventId, spread, type Mark } from '../held';
import { cpuTicks, procStatusKb } from '../labs';
import { Background, nowMs, runOk, sleep } from '../proc';
import type { Row } from '../report';
import type { Scenario } from '../scenario';
import { median, percentile } from '../stats';

const SCENARIO = 'scale';
const PER_NODE = 20;
const POLICIES = 200;
/** Hosts → the churn rates (changes per second) measured with them. */
const ROWS: readonly [number, readonly number[]][] = [
  [100, [10]],
  [300, [10]],
  [1000, [10, 50]],
];
/** Where the targets apply: 1,000 hosts, 20,000 endpoints, 10 changes per second. */
const TARGET_HOSTS = 1000;
const TARGET_RATE = 10;
const FULL_AGENTS = 8;
const WATCHER_PROCESSES = 2;
const REST_MS = 5000;
const WINDOW_MS = 20_000;
/** After the last write: time for it to reach every host before the CPU is read. */
const DRAIN_MS = 3000;
const HOST = path.join(__dirname, '../scale-host.js');
/**
 * Node's options as bin/sluice starts the agent (its shebang): the full agents' memory is then the
 * real agent's, whose young generation is kept small.
 */
const AGENT_NODE_OPTIONS = readFileSync(findUp(__dirname, path.join('bin', 'sluice')), 'utf8')
  .split('\n', 1)[0]!
  .split(' ')
  .filter((word) => word.startsWith('--'));

interface Reply {
  startMs: number;
}

interface Report {
  marks: Mark[];
  held: [string, number[]][];
  applies: number;
  rssMb: number;
}

class HostProcess {
  private readonly process: Background;

  constructor(what: string, args: string[], nodeOptions: readonly string[] = []) {
    this.process = new Background(what, process.execPath, [...nodeOptions, HOST, ...args]);
  }

  /** A saturated host answers late: that is a figure too, so it is given long. */
  async ask<T>(command: string, timeoutMs = 120_000): Promise<T> {
    const reply = JSON.parse(await this.process.request(command, timeoutMs)) as T & { error?: string };
    if (reply.error !== undefined) throw new Error(`${this.process.what}: ${reply.error}`);
    return reply;
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}

/** The container churn, as hosts' CreateEndpoint and DeleteEndpoint write it: each change a new key. */
class Churn {
  /** "<host>/<slot>" → the serial of the endpoint in that slot, when not bigCluster's own. */
  private readonly serials = new Map<string, number>();
  private next: number;
  private change = 0;

  constructor(
    private readonly registry: Registry,
    private readonly firstHost: number,
    private readonly hosts: number,
  ) {
    this.next = hosts * PER_NODE;
  }

  /** `rate` changes a second for `ms`; resolves with when each was written (by event ID) and how many failed. */
  async run(rate: number, ms: number): Promise<{ writes: Map<string, number>; failed: number }> {
    const writes = new Map<string, number>();
    let failed = 0;
    const inFlight: Promise<void>[] = [];
    const start = nowMs();
    for (let k = 0; k < (rate * ms) / 1000; k++) {
      await sleep(start + (k * 1000) / rate - nowMs());
      // Stops and starts by turns, in one slot of a host after another, spread over the cluster.
      const pair = Math.floor(this.change / 2);
      const host = this.firstHost + ((pair * 7919) % (this.hosts - this.firstHost));
      const slot = pair % PER_NODE;
      const at = `${host}/${slot}`;
      const stop = this.change++ % 2 === 0;
      const serial = stop ? (this.serials.get(at) ?? host * PER_NODE + slot) : this.next++;
      if (!stop) this.serials.set(at, serial);
      const endpoint = bigEndpoint(serial, host, slot);
      writes.set(eventId(stop ? 'delete' : 'put', keys.endpoint(endpoint.node, endpoint.id)), nowMs());
      const write = stop ? this.registry.deleteEndpoint(endpoint.node, endpoint.id) : this.registry.putEndpoint(endpoint);
      inFlight.push(write.then(() => undefined, () => void failed++));
    }
    await Promise.all(inFlight);
    return { writes, failed };
  }
}

function ms(values: readonly number[]): string {
  if (values.length === 0) return 'none';
  return `${percentile(values, 50).toFixed(0)} / ${percentile(values, 99).toFixed(0)} / ${percentile(values, 100).toFixed(0)} ms`;
}

function row(figure: string, measured: string, target?: { text: string; ok: boolean }): Row {
  return { scenario: SCENARIO, figure, target: target?.text ?? '-', measured, verdict: target === undefined ? 'info' : target.ok ? 'pass' : 'FAIL' };
}

/** etcd's CPU (ms, from /proc) by now. */
function etcdMark(etcd: EtcdInstance, tickMs: number): Mark {
  return { at: nowMs(), cpuMs: cpuTicks(etcd.pid!) * tickMs };
}

export const scale: Scenario = {
  name: SCENARIO,
  labs: [],
  async run(ctx) {
    const tickMs = 1000 / Number((await runOk('getconf', ['CLK_TCK'])).stdout.trim());
    /** Hosts → a full agent's RSS (MB, the highest of them), for the memory per endpoint. */
    const rss = new Map<number, number>();
    for (const [hosts, rates] of ROWS) {
      const endpoints = hosts * PER_NODE;
      const atTarget = hosts === TARGET_HOSTS;
      const etcd = await startEtcd();
      const store = new EtcdStore({ endpoints: [etcd.endpoint] });
      const admin = new Etcd3({ hosts: `http://${etcd.endpoint}` });
      const processes: HostProcess[] = [];
      try {
        ctx.log(`${hosts} hosts: writing ${endpoints} endpoints and ${POLICIES} policies`);
        await writeAll(etcd.endpoint, bigCluster(endpoints, PER_NODE));
        const registry = new Registry(store);
        await Promise.all(bigPolicies(POLICIES).map((policy) => registry.putPolicy(policy)));

        // One after another, so each start is measured on an otherwise quiet machine.
        const starts: Reply[] = [];
        const agents: HostProcess[] = [];
        for (let i = 0; i < FULL_AGENTS; i++) {
          const agent = new HostProcess(`agent ${i}`, ['agent', etcd.endpoint, String(i)], AGENT_NODE_OPTIONS);
          processes.push(agent);
          agents.push(agent);
          starts.push(await agent.ask<Reply>('start'));
        }
        const watching = hosts - FULL_AGENTS;
        const watchers = Array.from({ length: WATCHER_PROCESSES }, (_, i) => {
          const count = Math.floor(watching / WATCHER_PROCESSES) + (i < watching % WATCHER_PROCESSES ? 1 : 0);
          return new HostProcess(`watchers ${i}`, ['watchers', etcd.endpoint, String(count)]);
        });
        processes.push(...watchers);
        ctx.log(`${hosts} hosts: connecting ${watching} watchers`);
        await Promise.all(watchers.map((w) => w.ask<Reply>('start')));

        const startMs = starts.map((s) => s.startMs);
        ctx.add(
          row(`${hosts} hosts: agent start (list + first apply), ${endpoints} endpoints, median / max of ${FULL_AGENTS}`,
            `${median(startMs).toFixed(0)} / ${Math.max(...startMs).toFixed(0)} ms`,
            atTarget ? { text: '≤ 5000 ms', ok: Math.max(...startMs) <= 5000 } : undefined),
        );

        const churn = new Churn(registry, FULL_AGENTS, hosts);
        for (const rate of rates) {
          const label = `${hosts} hosts, ${rate}/s`;
          const targeted = atTarget && rate === TARGET_RATE;
          const mark = async () => {
            const asked = nowMs();
            await Promise.all(processes.map((p) => p.ask('mark')));
            // Hosts that answer late are saturated: worth knowing when reading the figures.
            if (nowMs() - asked > 1000) ctx.log(`${label}: the hosts took ${((nowMs() - asked) / 1000).toFixed(1)} s to note the time`);
            return etcdMark(etcd, tickMs);
          };
          const rest = await mark();
          await sleep(REST_MS);
          const start = await mark();
          ctx.log(`${label}: churn for ${WINDOW_MS / 1000} s`);
          const { writes, failed } = await churn.run(rate, WINDOW_MS);
          await sleep(DRAIN_MS);
          const end = await mark();
          const [agentReports, watcherReports] = await Promise.all([
            Promise.all(agents.map((a) => a.ask<Report>('report'))),
            Promise.all(watchers.map((w) => w.ask<Report>('report'))),
          ]);

          const heldBy = (reports: readonly Report[]) => {
            const merged = new Map<string, number[]>();
            for (const report of reports) for (const [id, times] of report.held) merged.set(id, [...(merged.get(id) ?? []), ...times]);
            return merged;
          };
          const all = spread(writes, heldBy([...agentReports, ...watcherReports]), hosts);
          const byAgents = spread(writes, heldBy(agentReports), FULL_AGENTS);
          const p99 = all.toAll.length > 0 ? percentile(all.toAll, 99) : Infinity;
          ctx.add(
            row(`${label}: write → held by all ${hosts} hosts, p50 / p99 / max; writes not held by all`,
              `${ms(all.toAll)}; ${all.missed + failed} of ${writes.size}`,
              targeted ? { text: 'p99 ≤ 1000 ms, 0', ok: p99 <= 1000 && all.missed + failed === 0 } : undefined),
          );
          ctx.add(row(`${label}: write → a full agent's applied firewall holds it, p50 / p99 / max`, ms(byAgents.each)));
          ctx.add(row(`${label}: write → delivered by the watches of all ${watching} watchers, p50 / p99 / max`, ms(spread(writes, heldBy(watcherReports), watching).toAll)));

          const perChange = agentReports.map((r) => cpuPerChange(r.marks[0]!, r.marks[1]!, r.marks[2]!, writes.size));
          ctx.add(
            // A saturated agent folds more changes into each apply: fewer applies, less CPU per change.
            row(`${label}: agent CPU per remote change, median / max of ${FULL_AGENTS}; changes per firewall apply`,
              `${median(perChange).toFixed(2)} / ${Math.max(...perChange).toFixed(2)} ms; ${(writes.size / median(agentReports.map((r) => r.applies))).toFixed(1)}`,
              targeted ? { text: '≤ 1 ms', ok: Math.max(...perChange) <= 1 } : undefined),
          );
          const agentRss = Math.max(...agentReports.map((r) => r.rssMb));
          rss.set(hosts, Math.max(rss.get(hosts) ?? 0, agentRss));
          ctx.add(
            row(`${label}: agent RSS, highest of ${FULL_AGENTS}, ${endpoints} endpoints`, `${agentRss.toFixed(0)} MB`,
              targeted ? { text: '≤ 120 MB', ok: agentRss <= 120 } : undefined),
          );
          const status = await admin.maintenance.status();
          ctx.add(
            row(`${label}: etcd CPU (share of a core) at rest / churning; RSS; database size`,
              `${coreShare(rest, start).toFixed(2)} / ${coreShare(start, end).toFixed(2)}; ${(procStatusKb(etcd.pid!, 'VmRSS') / 1024).toFixed(0)} MB; ${(Number(status.dbSize) / 2 ** 20).toFixed(0)} MB`),
          );
          const watcherCpu = watcherReports.map((r) => coreShare(r.marks[1]!, r.marks[2]!));
          ctx.add(row(`${label}: CPU of the ${WATCHER_PROCESSES} watcher processes (share of a core each), at rest / churning`,
            `${watcherReports.map((r) => coreShare(r.marks[0]!, r.marks[1]!).toFixed(2)).join(', ')} / ${watcherCpu.map((c) => c.toFixed(2)).join(', ')}`));
        }
      } finally {
        await Promise.all(processes.map((p) => p.stop()));
        admin.close();
        await store.close();
        await etcd.stop();
      }
    }
    const [few, many] = [ROWS[0]![0], ROWS.at(-1)![0]];
    const perEndpoint = ((rss.get(many)! - rss.get(few)!) * 1024) / ((many - few) * PER_NODE);
    ctx.add(row(`agent memory per endpoint (RSS slope from ${few} to ${many} hosts)`, `${perEndpoint.toFixed(2)} KB`));
  },
};
