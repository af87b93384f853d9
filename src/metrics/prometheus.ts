/**
 * The agent's metrics in a prom-client Registry of its own (never the global
 * one, so tests can run several agents in one process). Counts and durations
 * are pushed through the Metrics calls; endpoints, the store and the kernel's
 * rule counters are read when scraped, each at most once per CACHE_MS however
 * many metrics need them, so a scrape costs one `iptables-save` and one store
 * read.
 */
import createDebug from 'debug';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClusterView } from '../agent/view';
import type { Dataplane, RuleCounter } from '../dataplane/dataplane';
import { errorMessage } from '../errors';
import { keys } from '../store/keys';
import type { Store } from '../store/store';
import type { Metrics } from './metrics';
import { policyPackets, type PolicyPackets } from './rule-counters';

const debug = createDebug('sluice:metrics');

/** Readings shared by the metrics of one scrape (and of scrapes closer together than this). */
const CACHE_MS = 1000;
/** A store that has not answered by then is down, as far as a scrape can tell. */
const STORE_TIMEOUT_MS = 2000;

/** What the agent is asked for when scraped. */
export interface AgentReadings {
  /** Endpoints on this host and in the whole cluster, as the agent's view holds them. */
  endpoints(): { local: number; cluster: number };
  /** Whether the store answers a read. */
  storeUp(): Promise<boolean>;
  /** The kernel's counts of Sluice's filter rules. */
  ruleCounters(): Promise<RuleCounter[]>;
}

export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'outcome'>;
  private readonly requestSeconds: Histogram<'method'>;
  private readonly applySeconds: Histogram;
  private readonly convergenceSeconds: Histogram;

  constructor(readings: AgentReadings, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'sluice_plugin_requests_total',
      help: 'Plugin requests from Docker, by endpoint and outcome (ok: a 2xx reply)',
      labelNames: ['method', 'outcome'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'sluice_plugin_request_duration_seconds',
      help: 'Time to answer a plugin request',
      labelNames: ['method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.applySeconds = new Histogram({
      name: 'sluice_dataplane_apply_duration_seconds',
      help: 'Time to make the kernel hold the desired gateways, routes and firewall',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.convergenceSeconds = new Histogram({
      name: 'sluice_convergence_seconds',
      help: 'Time from a batch of store changes seen to the kernel holding it',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });

    const endpoints = readings.endpoints.bind(readings);
    new Gauge({
      name: 'sluice_endpoints',
      help: 'Container endpoints on this host (scope local) and in the cluster (scope cluster)',
      labelNames: ['scope'],
      registers,
      collect() {
        const { local, cluster } = endpoints();
        this.set({ scope: 'local' }, local);
        this.set({ scope: 'cluster' }, cluster);
      },
    });
    const storeUp = cached(() => readings.storeUp());
    new Gauge({
      name: 'sluice_store_up',
      help: `1 if the store answered a read within ${STORE_TIMEOUT_MS / 1000} s, else 0`,
      registers,
      async collect() {
        this.set((await storeUp()) ? 1 : 0);
      },
    });

    const packets = cached(async (): Promise<PolicyPackets | undefined> => {
      try {
        return policyPackets(await readings.ruleCounters());
      } catch (err) {
        // The rest of the scrape still serves; the rule counters are left out of it.
        debug('reading rule counters: %s', errorMessage(err));
        return undefined;
      }
    });
    new Counter({
      name: 'sluice_policy_rule_packets_total',
      help: 'Packets that matched a policy rule (rule: its index in the direction), from the kernel counters; reset when the policy chain is rewritten',
      labelNames: ['policy', 'direction', 'rule', 'action'],
      registers,
      async collect() {
        const read = await packets();
        this.reset();
        for (const r of read?.rules ?? []) this.inc({ policy: r.policy, direction: r.direction, rule: String(r.rule), action: r.action }, r.packets);
      },
    });
    new Counter({
      name: 'sluice_policy_default_deny_packets_total',
      help: 'Packets dropped because a policy selected the endpoint and none of its rules allowed them, from the kernel counters',
      labelNames: ['direction'],
      registers,
      async collect() {
        const read = await packets();
        this.reset();
        if (read === undefined) return;
        for (const direction of ['ingress', 'egress'] as const) this.inc({ direction }, read.defaultDeny[direction]);
      },
    });
  }

  pluginRequest(method: string, ok: boolean, seconds: number): void {
    this.requests.inc({ method, outcome: ok ? 'ok' : 'error' });
    this.requestSeconds.observe({ method }, seconds);
  }

  dataplaneApplied(seconds: number): void {
    this.applySeconds.observe(seconds);
  }

  converged(seconds: number): void {
    this.convergenceSeconds.observe(seconds);
  }
}

/** The readings of the agent of `node`: `view` is its cluster view (a function: the agent is made after its metrics). */
export function agentReadings(node: string, view: () => ClusterView, store: Store, dataplane: Pick<Dataplane, 'ruleCounters'>): AgentReadings {
  return {
    endpoints: () => ({ local: view().endpointsOf(node).length, cluster: view().endpoints.size }),
    storeUp: () => storeAnswers(store, keys.node(node)),
    ruleCounters: () => dataplane.ruleCounters(),
  };
}

/** Whether `store` answers a read within STORE_TIMEOUT_MS. */
async function storeAnswers(store: Store, key: string): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), STORE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([store.get(key).then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `read`, called at most once per CACHE_MS; callers meanwhile share its result (or the read in flight). */
function cached<T>(read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (last === undefined || now - last.at >= CACHE_MS) last = { at: now, value: read() };
    return last.value;
  };
}
