/**
 * Kernel applies that fail half-way (the recording dataplane's failNext) leave
 * nothing half-made, and the next apply repairs what the failed one missed:
 * real agent, IPAM and driver over the memory store and the fake Docker.
 */
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { DataplaneError } from '../../../src/errors';
import { policyChainName } from '../../../src/firewall/names';
import { parsePolicies } from '../../../src/policy-document/policy';
import { keys } from '../../../src/store/keys';
import { FakeClock, settle } from '../../helpers/fake-clock';
import { createDockerNetwork, useCluster, type TestHost } from '../../helpers/host';

const NET = 'n'.repeat(64);
const SUBNET = '10.96.0.0/16';
const EP = 'e1'.repeat(32);
const VETH = `slv${EP.slice(0, 11)}`;
const POLICY = parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: []\n")[0]!;
const RESYNC_MS = 30_000;

describe('Agent: a kernel apply that fails half-way', () => {
  // Resync every 30 s: before the first liveness and reconciliation ticks (a minute).
  const cluster = useCluster({ flags: { 'resync-interval': String(RESYNC_MS / 1000) } });
  let host: TestHost;
  let poolId: string;
  let log: jest.SpyInstance;

  beforeEach(async () => {
    host = await cluster.start('h1', '192.0.2.1');
    poolId = await createDockerNetwork(host, NET, SUBNET);
    log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });

  const address = async (): Promise<string> => (await host.ipam.requestAddress({ poolId })).address;
  const createEndpoint = (cidr: string) => host.driver.createEndpoint({ networkId: NET, endpointId: EP, address: cidr, portMappings: [], driverOptions: {} });
  const join = () => host.driver.join({ networkId: NET, endpointId: EP, sandboxKey: '/var/run/docker/netns/x', portMappings: [] });
  const heldAddresses = async () => (await host.registry.listAddresses(poolId)).filter((a) => a.record.kind === 'endpoint');
  const localSet = () => host.dataplane.firewall.ipsets.find((s) => s.name === 'sluice-local')?.members ?? [];
  const chains = () => host.dataplane.firewall.filter.map((c) => c.name);

  it('a veth that fails to be made fails Join (CreateEndpoint does not wait for it); Docker\'s cleanup leaves nothing, and a retry works', async () => {
    host.docker.run(NET, EP, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
    const first = await address();
    host.dataplane.failNext('addEndpoint');
    await createEndpoint(first);
    await expect(join()).rejects.toThrow(DataplaneError);
    expect(host.dataplane.endpoints.size).toBe(0);
    expect(localSet()).toEqual([]); // never half in force
    // What Docker does after a failed Join: DeleteEndpoint, then release the address and try the container again.
    await host.driver.deleteEndpoint(NET, EP);
    await host.ipam.releaseAddress(poolId, first.split('/')[0]!);
    expect(await host.registry.listEndpoints('h1')).toEqual([]);
    expect(await heldAddresses()).toEqual([]);

    const second = await address();
    await createEndpoint(second);
    await join();
    expect([...host.dataplane.endpoints.keys()]).toEqual([VETH]);
    expect(localSet()).toEqual([`${second.split('/')[0]},${VETH}`]);
  });

  it('Join failing in the firewall errors; Docker\'s cleanup leaves nothing, and a retry has its firewall in force', async () => {
    host.docker.run(NET, EP, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
    const first = await address();
    await createEndpoint(first);
    // The endpoint's record reaches the agent's watch too: that apply must not take Join's failure.
    await settle();
    await host.agent.converge();
    host.dataplane.failNext('applyFirewallChange');
    await expect(join()).rejects.toThrow('injected failure in applyFirewallChange');
    expect(localSet()).toEqual([]); // never half in force
    // What Docker does after a failed Join: DeleteEndpoint, ReleaseAddress.
    await host.driver.deleteEndpoint(NET, EP);
    await host.ipam.releaseAddress(poolId, first.split('/')[0]!);
    await settle(); // the veth goes once DeleteEndpoint has answered
    expect(await host.registry.listEndpoints('h1')).toEqual([]);
    expect(host.dataplane.endpoints.size).toBe(0);
    expect(await heldAddresses()).toEqual([]);
    expect(localSet()).toEqual([]);

    const second = await address();
    await createEndpoint(second);
    await join();
    expect(localSet()).toEqual([`${second.split('/')[0]},${VETH}`]);
  });

  it('an apply failing in the routes, after the gateways went in, is made whole by the next one: Join\'s', async () => {
    host.docker.run(NET, EP, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
    host.dataplane.failNext('syncRoutes');
    const cidr = await address(); // claims the network's first block: a new blackhole route
    await settle();
    expect(log.mock.calls).toEqual([['sluice agent: apply: injected failure in syncRoutes']]);
    expect(host.dataplane.routes.size).toBe(0);
    await createEndpoint(cidr);
    await join();
    expect([...host.dataplane.routes.values()].map((r) => r.kind)).toEqual(['blackhole']);
    expect(localSet()).toHaveLength(1);
  });

  it('an endpoint that arrived with an apply failing before the firewall step is in the next apply\'s sets', async () => {
    await host.registry.putPolicy(parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress:\n  - action: allow\n    from: role == 'client'\n")[0]!);
    await settle();
    await host.agent.converge();
    const network = await host.registry.store.get(keys.network(poolId));
    const client = { id: 'c'.repeat(64), network: poolId, node: 'h2', address: '10.96.7.2', hostIfname: `slv${'c'.repeat(11)}`, labels: { role: 'client' }, ports: [] };
    // One revision: a new peer with a block (a route to sync) and its container (a set member).
    host.dataplane.failNext('syncRoutes');
    await host.registry.store.putIfUnchanged([{ key: keys.network(poolId), modRevision: network!.modRevision }], [
      { key: keys.node('h2'), value: JSON.stringify({ name: 'h2', ip: '192.0.2.2', backend: 'vxlan', vtepMac: '0e:00:00:00:00:02', version: '0.1.0', lastSeen: '2026-11-27T12:00:00.000Z' }) },
      { key: keys.block(poolId, '10.96.7.0/26'), value: JSON.stringify({ network: poolId, block: '10.96.7.0/26', node: 'h2' }) },
      { key: keys.endpoint('h2', client.id), value: JSON.stringify(client) },
    ]);
    await settle();
    expect(log.mock.calls).toEqual([['sluice agent: apply: injected failure in syncRoutes']]);
    const holding = () => host.dataplane.firewall.ipsets.filter((set) => set.members.includes(client.address)).length;
    expect(holding()).toBe(0);
    await host.agent.converge(); // nothing new to see: the failed apply's changes must not be lost
    expect(holding()).toBe(1);
  });

  it('a policy change whose apply fails is reported, and the resync tick puts it in force', async () => {
    host.dataplane.failNext('applyFirewallChange');
    await host.registry.putPolicy(POLICY);
    await settle();
    expect(log.mock.calls).toEqual([['sluice agent: apply: injected failure in applyFirewallChange']]);
    expect(chains()).not.toContain(policyChainName('ingress', POLICY.name));
    await cluster.clock().advance(RESYNC_MS);
    expect(chains()).toContain(policyChainName('ingress', POLICY.name));
  });

  it('a new peer block whose routes fail to apply gets its route on the resync tick', async () => {
    const peer = await cluster.start('h2', '192.0.2.2');
    const peerPool = await createDockerNetwork(peer, 'm'.repeat(64), SUBNET);
    host.dataplane.failNext('syncRoutes');
    await peer.ipam.requestAddress({ poolId: peerPool });
    await settle();
    const peerBlocks = (await host.registry.listBlocks(peerPool)).filter((b) => b.node === 'h2').map((b) => b.block);
    expect(peerBlocks).toHaveLength(1);
    expect(host.dataplane.routes.has(peerBlocks[0]!)).toBe(false);
    await cluster.clock().advance(RESYNC_MS);
    expect(host.dataplane.routes.get(peerBlocks[0]!)).toMatchObject({ kind: 'vxlan', nodeIp: '192.0.2.2' });
  });
});

describe('Agent: failures you can see', () => {
  const cluster = useCluster();
  let log: jest.SpyInstance;
  beforeEach(() => {
    log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });

  it('retries a start whose apply fails in the kernel, a second later', async () => {
    const clock = new FakeClock();
    const host = cluster.start('h1', '192.0.2.1', { clock, dataplane: failingOnce(new DataplaneError('iptables-restore: line 3 failed')) });
    await settle();
    expect(log.mock.calls).toEqual([['sluice agent: sync with the store and Docker failed: iptables-restore: line 3 failed; retrying']]);
    await clock.advance(1000);
    const started = await host;
    expect(started.dataplane.firewall.filter.length).toBeGreaterThan(0);
  });

  it('gives up a start at once on a bug, logging its stack', async () => {
    const clock = new FakeClock();
    const dataplane = failingOnce(new TypeError("Cannot read properties of undefined (reading 'gateway')"));
    await expect(cluster.start('h1', '192.0.2.1', { clock, dataplane })).rejects.toThrow(TypeError);
    // One try, no retry: IPv4's firewall and IPv6's, applied at once.
    expect(dataplane.callsTo('applyFirewall').map(([, family]) => family)).toEqual([4, 6]);
    expect(log.mock.calls).toHaveLength(1);
    expect(String(log.mock.calls[0]![0])).toMatch(/^sluice agent: sync with the store and Docker: Cannot read properties[^\n]*\nTypeError: [^\n]*\n\s+at /);
  });

  it('logs a background failure at once, then at most once a minute per kind of work', async () => {
    const host = await cluster.start('h1', '192.0.2.1');
    // After a failed apply the next one is full: each failure goes where that apply writes.
    const failPolicy = async (name: string, method: 'applyFirewall' | 'applyFirewallChange' = 'applyFirewallChange'): Promise<void> => {
      host.dataplane.failNext(method);
      await host.registry.putPolicy({ ...POLICY, name });
      await settle();
    };
    await failPolicy('a');
    await failPolicy('b', 'applyFirewall');
    expect(log.mock.calls).toHaveLength(1);
    await cluster.clock().advance(60_000);
    log.mockClear();
    await failPolicy('c');
    expect(log.mock.calls).toEqual([['sluice agent: apply: injected failure in applyFirewallChange']]);
  });
});

/** A recording dataplane whose first firewall apply fails with `error`. */
function failingOnce(error: Error): RecordingDataplane {
  const dataplane = new RecordingDataplane();
  dataplane.failNext('applyFirewall', error);
  return dataplane;
}
