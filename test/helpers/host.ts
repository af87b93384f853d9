/** One simulated host for unit tests: the real IPAM, driver and agent over fakes of the kernel and Docker. */
import { Agent, type AgentOptions, type StartNameServer } from '../../src/agent/agent';
import { loadAgentConfig } from '../../src/config';
import { RecordingDataplane } from '../../src/dataplane/fake/recording-dataplane';
import { NetworkDriver } from '../../src/driver/network-service';
import { Ipam, knownLater } from '../../src/ipam/ipam-service';
import type { Metrics } from '../../src/metrics/metrics';
import { MemoryStore } from '../../src/store/memory-store';
import { Registry } from '../../src/store/registry';
import { FakeClock } from './fake-clock';
import { FakeDocker } from './fake-docker';

export { eventually } from './eventually';

export interface TestHost {
  name: string;
  ip: string;
  registry: Registry;
  dataplane: RecordingDataplane;
  docker: FakeDocker;
  ipam: Ipam;
  agent: Agent;
  driver: NetworkDriver;
  /** The agent's time: its timers fire only when a test advances it. */
  clock: FakeClock;
}

export interface TestHostOptions {
  onLink?: string[];
  backend?: string;
  dataplane?: RecordingDataplane;
  docker?: FakeDocker;
  agent?: Partial<AgentOptions>;
  flags?: Record<string, string>;
  metrics?: Metrics;
  startNames?: StartNameServer;
  /** Shared by the hosts of one cluster; a fresh one by default. */
  clock?: FakeClock;
}

export function testHost(store: MemoryStore, name: string, ip: string, opts: TestHostOptions = {}): TestHost {
  const config = loadAgentConfig({ node: name, 'node-ip': ip, backend: opts.backend ?? 'auto', 'resync-interval': '3600', ...opts.flags }, {});
  const registry = new Registry(store.connect());
  const dataplane = opts.dataplane ?? new RecordingDataplane({ onLink: opts.onLink ?? [] });
  const docker = opts.docker ?? new FakeDocker();
  const ipam = new Ipam(registry, {
    node: name,
    defaultSupernet: config.defaultSupernet,
    defaultSubnetPrefix: config.defaultSubnetPrefix,
    defaultBlockSize: config.blockSize,
  }, knownLater(() => agent));
  const clock = opts.clock ?? new FakeClock();
  const agent: Agent = new Agent(config, registry, dataplane, docker, ipam, { reconcileConfirmMs: 0, clock, ...opts.agent }, opts.metrics, opts.startNames);
  const driver = new NetworkDriver(registry, ipam, dataplane, docker, agent, { node: name, dnsAddress: '169.254.53.53' });
  return { name, ip, registry, dataplane, docker, ipam, agent, driver, clock };
}

/**
 * Hosts sharing one memory store, made afresh for every test of the calling
 * describe and stopped in its afterEach, so a failed assertion leaves no timers.
 */
export function useCluster(defaults: TestHostOptions = {}): {
  store: () => MemoryStore;
  clock: () => FakeClock;
  start: (name: string, ip: string, opts?: TestHostOptions) => Promise<TestHost>;
} {
  let store = new MemoryStore();
  let clock = new FakeClock();
  let hosts: TestHost[] = [];
  beforeEach(() => {
    store = new MemoryStore();
    clock = new FakeClock();
    hosts = [];
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    for (const host of hosts) await host.agent.stop();
    await store.close();
  });
  return {
    store: () => store,
    clock: () => clock,
    start: async (name, ip, opts = {}) => {
      const host = testHost(store, name, ip, { clock, ...defaults, ...opts });
      hosts.push(host);
      await host.agent.start();
      return host;
    },
  };
}

/** Docker's calls for `docker network create -d sluice --ipam-driver sluice --subnet SUBNET`; returns the pool ID. */
export async function createDockerNetwork(
  host: TestHost,
  networkId: string,
  subnet: string,
  /** `ipv6Subnet`: `--ipv6 --subnet` too; its pool ID is cidrKey(ipv6Subnet). */
  options: { generic?: Record<string, string>; internal?: boolean; ipv6Subnet?: string } = {},
): Promise<string> {
  const { poolId, pool, data } = await host.ipam.requestPool({ pool: subnet, options: {}, v6: false });
  const { ipv6Subnet } = options;
  const pool6 = ipv6Subnet === undefined ? undefined : await host.ipam.requestPool({ pool: ipv6Subnet, options: {}, v6: true });
  host.docker.addNetwork(networkId, 'appnet', pool);
  await host.driver.createNetwork({
    networkId,
    generic: options.generic ?? {},
    internal: options.internal ?? false,
    ipv6: pool6 !== undefined,
    ipv4Data: [{ addressSpace: 'sluice-local', pool, gateway: data['com.docker.network.gateway'], auxAddresses: {} }],
    ipv6Data: pool6 === undefined ? [] : [{ addressSpace: 'sluice-local', pool: pool6.pool, gateway: pool6.data['com.docker.network.gateway'], auxAddresses: {} }],
  });
  return poolId;
}
