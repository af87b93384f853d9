/**
 * The agent's /metrics as a scraper sees it, over HTTP: plugin requests
 * through the real app, and an agent over the memory store and the recording
 * dataplane, whose rule counters stand in for the kernel's.
 */
import { buildApp } from '../../../src/api/app';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { ConflictError, DataplaneError } from '../../../src/errors';
import { PrometheusMetrics, agentReadings, type AgentReadings } from '../../../src/metrics/prometheus';
import { listenMetrics, type MetricsListener } from '../../../src/metrics/server';
import { parsePolicies } from '../../../src/policy-document/policy';
import { MemoryStore } from '../../../src/store/memory-store';
import { createDockerNetwork, eventually, testHost, type TestHost } from '../../helpers/host';
import { metricValue, parseMetrics, type Sample } from '../../helpers/metrics-text';
import { FakeIpamService, FakeNetworkService, goJson, send, serve } from '../api/harness';
import { WEB_FROM_CLIENT } from '../../helpers/policies';

const SUBNET = '10.96.0.0/16';
const NET = 'n'.repeat(64);

const listeners: MetricsListener[] = [];
afterEach(async () => {
  for (const listener of listeners.splice(0)) await listener.close();
});

async function serveMetrics(metrics: PrometheusMetrics): Promise<() => Promise<Sample[]>> {
  const listener = await listenMetrics(metrics.registry, '127.0.0.1', 0);
  listeners.push(listener);
  return async () => {
    const reply = await fetch(`http://127.0.0.1:${listener.address.port}/metrics`);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseMetrics(await reply.text());
  };
}

describe('metrics of plugin requests', () => {
  const idle: AgentReadings = { endpoints: () => ({ local: 0, cluster: 0 }), storeUp: () => Promise.resolve(true), ruleCounters: () => Promise.resolve([]) };

  it('counts requests by plugin endpoint and outcome, and times them', async () => {
    const metrics = new PrometheusMetrics(idle, { processMetrics: false });
    const scrape = await serveMetrics(metrics);
    const ipam = new FakeIpamService();
    const plugin = await serve(buildApp({ network: new FakeNetworkService(), ipam, metrics }));
    try {
      const pool = goJson({ AddressSpace: 'sluice-local', Pool: '10.20.0.0/16', SubPool: '', Options: null, V6: false });
      expect((await send(plugin.socketPath, '/IpamDriver.RequestPool', pool)).status).toBe(200);
      expect((await send(plugin.socketPath, '/IpamDriver.RequestPool', pool)).status).toBe(200);
      ipam.failNext('requestPool', new ConflictError('overlaps'));
      expect((await send(plugin.socketPath, '/IpamDriver.RequestPool', pool)).status).toBe(409);
      expect((await send(plugin.socketPath, '/IpamDriver.RequestPool', '{not json')).status).toBe(400);
      expect((await send(plugin.socketPath, '/NetworkDriver.AllocateNetwork', '{}')).status).toBe(404);
    } finally {
      await plugin.close();
    }
    const samples = await scrape();
    const requests = (labels: Record<string, string>) => metricValue(samples, 'sluice_plugin_requests_total', labels);
    expect(requests({ method: 'IpamDriver.RequestPool', outcome: 'ok' })).toBe(2);
    expect(requests({ method: 'IpamDriver.RequestPool', outcome: 'error' })).toBe(2);
    // A path the plugin does not serve is no series of its own.
    expect(requests({ method: 'other', outcome: 'error' })).toBe(1);
    expect(samples.filter((s) => s.labels.method === 'NetworkDriver.AllocateNetwork')).toEqual([]);
    expect(metricValue(samples, 'sluice_plugin_request_duration_seconds_count', { method: 'IpamDriver.RequestPool' })).toBe(4);
  });

  it('serves only GET /metrics', async () => {
    const metrics = new PrometheusMetrics(idle, { processMetrics: false });
    await serveMetrics(metrics);
    const port = listeners[0]!.address.port;
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(404);
  });

  it('includes the process metrics unless told not to', async () => {
    const withProcess = await (await serveMetrics(new PrometheusMetrics(idle)))();
    expect(metricValue(withProcess, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    const without = await (await serveMetrics(new PrometheusMetrics(idle, { processMetrics: false })))();
    expect(metricValue(without, 'process_cpu_seconds_total')).toBeUndefined();
  });
});

describe('metrics of an agent', () => {
  let store: MemoryStore;
  let hosts: TestHost[];

  beforeEach(() => {
    store = new MemoryStore();
    hosts = [];
  });
  afterEach(async () => {
    for (const host of hosts) await host.agent.stop();
    await store.close();
  });

  /** A started host h1 with metrics on, its dataplane's counters standing in for the kernel's. */
  async function metricsHost(): Promise<{ host: TestHost; scrape: () => Promise<Sample[]>; own: MemoryStore }> {
    const own = store.connect();
    const dataplane = new RecordingDataplane();
    const metrics = new PrometheusMetrics(agentReadings('h1', () => host.agent.view, own, dataplane), { processMetrics: false });
    const host = testHost(store, 'h1', '192.0.2.1', { dataplane, metrics });
    hosts.push(host);
    await host.agent.start();
    return { host, scrape: await serveMetrics(metrics), own };
  }

  async function runContainer(host: TestHost, endpointId: string, labels: Record<string, string>): Promise<void> {
    const { address } = await host.ipam.requestAddress({ poolId: SUBNET.replace('/', '-') });
    host.docker.run(NET, endpointId, { containerId: `c${endpointId}`, containerName: `c${endpointId[0]}`, labels });
    await host.driver.createEndpoint({ networkId: NET, endpointId, address, portMappings: [], driverOptions: {} });
    await host.driver.join({ networkId: NET, endpointId, sandboxKey: 'x', portMappings: [] });
  }

  it('reports the endpoints of this host and of the cluster, applies, and convergence after a store change', async () => {
    const { host, scrape } = await metricsHost();
    const h2 = testHost(store, 'h2', '192.0.2.2');
    hosts.push(h2);
    await h2.agent.start();
    await createDockerNetwork(host, NET, SUBNET);
    await createDockerNetwork(h2, NET, SUBNET);
    await runContainer(host, 'a'.repeat(64), { role: 'web' });
    await runContainer(h2, 'b'.repeat(64), { role: 'client' });
    await runContainer(h2, 'c'.repeat(64), { role: 'client' });

    await eventually(async () => {
      const samples = await scrape();
      expect(metricValue(samples, 'sluice_endpoints', { scope: 'local' })).toBe(1);
      expect(metricValue(samples, 'sluice_endpoints', { scope: 'cluster' })).toBe(3);
    });
    const before = await scrape();
    expect(metricValue(before, 'sluice_dataplane_apply_duration_seconds_count')).toBeGreaterThan(0);
    expect(metricValue(before, 'sluice_store_up')).toBe(1);

    // A change made elsewhere reaches this agent through its watch.
    const converged = metricValue(before, 'sluice_convergence_seconds_count')!;
    await h2.registry.putPolicy(parsePolicies(WEB_FROM_CLIENT)[0]!);
    await eventually(async () => expect(metricValue(await scrape(), 'sluice_convergence_seconds_count')).toBeGreaterThan(converged));
  });

  it('reads the policy counters from the rules the agent compiled: allow per rule, default deny per direction', async () => {
    const { host, scrape } = await metricsHost();
    await createDockerNetwork(host, NET, SUBNET);
    await runContainer(host, 'a'.repeat(64), { role: 'web' });
    await host.registry.putPolicy(parsePolicies(WEB_FROM_CLIENT)[0]!);
    await eventually(async () =>
      expect(metricValue(await scrape(), 'sluice_policy_rule_packets_total', { policy: 'web-from-client', direction: 'ingress', rule: '0', action: 'allow' })).toBe(0),
    );
    host.dataplane.countPackets('policy web-from-client ingress[0]', 3);
    host.dataplane.countPackets('policy web-from-client ingress[0] allowed', 3);
    host.dataplane.countPackets('sluice: default deny ingress (selected by policy)', 2);
    // Scrapes a second apart are not one cached reading.
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const samples = await scrape();
    expect(samples.filter((s) => s.name === 'sluice_policy_rule_packets_total')).toEqual([
      { name: 'sluice_policy_rule_packets_total', labels: { policy: 'web-from-client', direction: 'ingress', rule: '0', action: 'allow' }, value: 3 },
    ]);
    expect(metricValue(samples, 'sluice_policy_default_deny_packets_total', { direction: 'ingress' })).toBe(2);
    expect(metricValue(samples, 'sluice_policy_default_deny_packets_total', { direction: 'egress' })).toBe(0);
  });

  it('reads the kernel once per scrape, and still serves the rest when that read fails', async () => {
    const { host, scrape } = await metricsHost();
    const reads = () => host.dataplane.callsTo('ruleCounters').length;
    const first = reads();
    await scrape();
    expect(reads()).toBe(first + 1);

    await new Promise((resolve) => setTimeout(resolve, 1100));
    host.dataplane.failNext('ruleCounters', new DataplaneError('iptables-save: not found'));
    const samples = await scrape();
    expect(metricValue(samples, 'sluice_store_up')).toBe(1);
    expect(samples.filter((s) => s.name.startsWith('sluice_policy_'))).toEqual([]);
  });

  it('says the store is down when it does not answer', async () => {
    const { scrape, own } = await metricsHost();
    expect(metricValue(await scrape(), 'sluice_store_up')).toBe(1);
    await own.close();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(metricValue(await scrape(), 'sluice_store_up')).toBe(0);
  });
});
