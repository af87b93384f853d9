import { Agent } from '../../../src/agent/agent';
import { Reconciler } from '../../../src/agent/reconcile';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { status } from '../../../src/cli/commands';
import { PROTECTED_SET } from '../../../src/firewall/names';
import { keys } from '../../../src/store/keys';
import { MemoryStore } from '../../../src/store/memory-store';
import { settle } from '../../helpers/fake-clock';
import { createDockerNetwork, eventually, testHost, useCluster, type TestHost } from '../../helpers/host';

const SUBNET = '10.96.0.0/16';

describe('Agent: routes between hosts', () => {
  const { start } = useCluster();

  async function claimBlock(host: TestHost): Promise<string> {
    const { poolId } = await host.ipam.requestPool({ pool: SUBNET, options: {}, v6: false });
    await host.ipam.requestAddress({ poolId });
    const blocks = await host.registry.listBlocks(poolId);
    return blocks.find((b) => b.node === host.name)!.block;
  }

  it('routes a peer\'s block via the peer when it shares a link (host-gw), and blackholes its own', async () => {
    const h1 = await start('h1', '192.0.2.1', { onLink: ['192.0.2.2'] });
    const h2 = await start('h2', '192.0.2.2', { onLink: ['192.0.2.1'] });
    const block2 = await claimBlock(h2);
    await eventually(() => expect(h1.dataplane.routes.get(block2)).toEqual({ kind: 'host-gw', block: block2, via: '192.0.2.2' }));
    await eventually(() => expect(h2.dataplane.routes.get(block2)).toEqual({ kind: 'blackhole', block: block2 }));
  });

  it('goes through VXLAN to a peer on another subnet, with the peer\'s VTEP MAC', async () => {
    const h1 = await start('h1', '192.0.2.1');
    const h2 = await start('h2', '198.51.100.2');
    const block2 = await claimBlock(h2);
    await eventually(() =>
      expect(h1.dataplane.routes.get(block2)).toEqual({ kind: 'vxlan', block: block2, nodeIp: '198.51.100.2', vtepMac: h2.dataplane.vxlan!.mac, mtu: 1450 }),
    );
  });

  it('gives containers the underlay MTU with auto, the tunnel its own less the header, on the device and the routes into it', async () => {
    const jumbo = () => new RecordingDataplane({ mtu: 9000 });
    const h1 = await start('h1', '192.0.2.1', { dataplane: jumbo() });
    const h2 = await start('h2', '198.51.100.2', { dataplane: jumbo() });
    const block2 = await claimBlock(h2);
    await eventually(() => expect(h1.dataplane.routes.get(block2)).toMatchObject({ kind: 'vxlan', mtu: 8950 }));
    expect({ containers: h1.agent.mtu, device: h1.dataplane.vxlan?.mtu }).toEqual({ containers: 9000, device: 8950 });
    const vxlanOnly = await start('h3', '198.51.100.3', { dataplane: jumbo(), backend: 'vxlan' });
    const chosen = await start('h4', '198.51.100.4', { dataplane: jumbo(), flags: { mtu: '1400' } });
    expect([vxlanOnly.agent.mtu, chosen.agent.mtu, chosen.dataplane.vxlan?.mtu]).toEqual([8950, 1400, 1400]);
  });

  it('gives a host that joins later routes to every block already claimed, and everyone a route to it', async () => {
    const h1 = await start('h1', '192.0.2.1', { onLink: ['192.0.2.3'] });
    const block1 = await claimBlock(h1);
    const h3 = await start('h3', '192.0.2.3', { onLink: ['192.0.2.1'] });
    expect(h3.dataplane.routes.get(block1)).toEqual({ kind: 'host-gw', block: block1, via: '192.0.2.1' });
    const block3 = await claimBlock(h3);
    await eventually(() => expect(h1.dataplane.routes.get(block3)?.kind).toBe('host-gw'));
  });

  it('keeps a peer\'s routes when its liveness lapses, and drops them when the node is removed', async () => {
    const h1 = await start('h1', '192.0.2.1', { onLink: ['192.0.2.2'] });
    const h2 = await start('h2', '192.0.2.2', { onLink: ['192.0.2.1'] });
    const block2 = await claimBlock(h2);
    await eventually(() => expect(h1.dataplane.routes.has(block2)).toBe(true));
    await h2.agent.stop();
    await h2.registry.store.delete('/sluice/v1/alive/h2');
    await h1.agent.converge();
    expect(h1.dataplane.routes.has(block2)).toBe(true);
    for (const block of await h1.registry.listBlocks('10.96.0.0-16')) {
      if (block.node === 'h2') await h1.registry.releaseBlock(block.network, block.block);
    }
    await h1.registry.deleteNode('h2');
    await eventually(() => expect(h1.dataplane.routes.has(block2)).toBe(false));
  });

  it('closes the Docker API of every node to containers, a node that joins later included', async () => {
    const h1 = await start('h1', '192.0.2.1');
    const protectedMembers = () => h1.dataplane.firewall.ipsets.find((s) => s.name === PROTECTED_SET)?.members;
    expect(protectedMembers()).toEqual(['192.0.2.1,tcp:2375', '192.0.2.1,tcp:2376']);
    await start('h2', '198.51.100.2');
    await eventually(() => expect(protectedMembers()).toEqual(expect.arrayContaining(['198.51.100.2,tcp:2375', '198.51.100.2,tcp:2376'])));
  });

  it('repairs the firewall when someone changed it behind its back, saying so', async () => {
    // A resync every 30 s, before the first liveness and reconciliation ticks (a minute).
    const h1 = await start('h1', '192.0.2.1', { flags: { 'resync-interval': '30' } });
    const log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const from = h1.dataplane.calls.length;
    h1.dataplane.damageFirewall();
    await h1.clock.advance(30_000);
    const firewallCalls = h1.dataplane.calls.slice(from).map((c) => c.method).filter((m) => m.endsWith('Firewall'));
    // The repair is a full apply: IPv4's firewall and IPv6's.
    expect(firewallCalls).toEqual(['verifyFirewall', 'applyFirewall', 'applyFirewall']);
    expect(log.mock.calls).toEqual([['sluice agent: repairing firewall changed outside sluice: filter chain SLUICE-FORWARD was flushed out of band']]);
  });
  it('puts back a route removed behind its back, on the resync tick', async () => {
    const h1 = await start('h1', '192.0.2.1', { flags: { 'resync-interval': '30' } });
    const block = await claimBlock(h1);
    await eventually(() => expect(h1.dataplane.routes.has(block)).toBe(true));
    h1.dataplane.routes.delete(block); // `ip route del` by someone else
    await h1.agent.converge();
    expect(h1.dataplane.routes.has(block)).toBe(false); // unchanged desired state: nothing sent
    await h1.clock.advance(30_000);
    expect(h1.dataplane.routes.get(block)).toEqual({ kind: 'blackhole', block });
  });

  it('reports its last apply and its latest background failure with its liveness, for sluice status', async () => {
    const h1 = await start('h1', '192.0.2.1');
    const log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    h1.dataplane.failNext('applyFirewallChange');
    await h1.registry.store.put(keys.policy('web'), "kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: []\n");
    await eventually(() => expect(log.mock.calls).toEqual([['sluice agent: apply: injected failure in applyFirewallChange']]));
    await h1.clock.advance(60_000); // the liveness timer writes the node record
    const text = await status(h1.registry);
    expect(text).toMatch(/^h1\s+alive\s.*\s\d{4}-\d\d-\d\dT\S+Z$/m);
    expect(text).toMatch(/NODE ERRORS[^]*^h1\s+\S+Z\s+apply: injected failure in applyFirewallChange$/m);
  });
});

describe('Agent: reconciling with Docker', () => {
  let store: MemoryStore;
  let agents: Agent[];

  // In afterEach, not at the end of a test: a failed assertion must not leave timers running.
  beforeEach(() => {
    store = new MemoryStore();
    agents = [];
  });
  afterEach(async () => {
    for (const agent of agents) await agent.stop();
    await store.close();
  });

  async function startHost(opts: Parameters<typeof testHost>[3] = {}): Promise<TestHost> {
    const host = testHost(store, 'h1', '192.0.2.1', opts);
    agents.push(host.agent);
    await host.agent.start();
    return host;
  }

  /** Reconciliation on `host` that waits `confirmMs` between its two looks. */
  function patientReconciler(host: TestHost, confirmMs: number): Reconciler {
    const { registry, dataplane, docker, ipam, agent, clock } = host;
    const creating = new Map(); // every endpoint here is joined before the looks that matter
    return new Reconciler({ node: 'h1', registry, dataplane, docker, ipam, view: agent.view, creating, clock, confirmMs, networksChanged: () => agent.networksChanged() });
  }

  it('after a restart, removes endpoints, veths and addresses of containers Docker no longer has, and keeps the rest', async () => {
    const first = await startHost();
    const poolId = await createDockerNetwork(first, 'n'.repeat(64), SUBNET);
    const ids = ['a'.repeat(64), 'b'.repeat(64)];
    const addresses: string[] = [];
    for (const id of ids) {
      const { address } = await first.ipam.requestAddress({ poolId });
      addresses.push(address.split('/')[0]!);
      first.docker.run('n'.repeat(64), id, { containerId: `c${id}`, containerName: `c${id[0]}`, labels: {} });
      await first.driver.createEndpoint({ networkId: 'n'.repeat(64), endpointId: id, address, portMappings: [], driverOptions: {} });
      await first.driver.join({ networkId: 'n'.repeat(64), endpointId: id, sandboxKey: 'x', portMappings: [] });
    }
    // An address allocated for a start that failed before CreateEndpoint.
    const { address: orphan } = await first.ipam.requestAddress({ poolId });
    await first.agent.stop(); // kill -9: nothing is cleaned up on the way out

    // While the agent is down, container "a" goes away and Docker never says so.
    first.docker.forget(ids[0]!);
    const second = await startHost({ dataplane: first.dataplane, docker: first.docker });

    expect((await second.registry.listEndpoints('h1')).map((e) => e.id)).toEqual([ids[1]]);
    expect([...second.dataplane.endpoints.keys()]).toEqual([`slv${ids[1]!.slice(0, 11)}`]);
    const held = (await second.registry.listAddresses(poolId)).map((a) => a.record.address);
    expect(held).toContain(addresses[1]);
    expect(held).not.toContain(addresses[0]);
    expect(held).not.toContain(orphan.split('/')[0]);
  });

  it('keeps the veth of an endpoint between CreateEndpoint and Join: it has no record until its Join', async () => {
    const host = await startHost({ agent: { reconcileIntervalMs: 1_000 } });
    const net = 'n'.repeat(64);
    const poolId = await createDockerNetwork(host, net, SUBNET);
    const id = 'c'.repeat(64);
    const { address } = await host.ipam.requestAddress({ poolId });
    await host.driver.createEndpoint({ networkId: net, endpointId: id, address, portMappings: [], driverOptions: {} });
    await settle();
    const looks = () => host.dataplane.callsTo('listEndpoints').length;
    const before = looks();
    await host.clock.advance(1_000); // a pass of reconciliation, before Docker lists the container
    await settle();
    expect(looks()).toBeGreaterThan(before);
    expect([...host.dataplane.endpoints.keys()]).toEqual([`slv${id.slice(0, 11)}`]);
    // Positive control: the same veth with no endpoint behind it is a leftover.
    await host.driver.deleteEndpoint(net, id);
    await settle();
    await host.dataplane.addEndpoint({ hostIfname: `slv${id.slice(0, 11)}`, containerIfname: `sc${id.slice(0, 11)}`, address: address.split('/')[0]!, mac: '02:42:0a:60:00:02', mtu: 1500 });
    await host.clock.advance(1_000);
    await settle();
    expect(host.dataplane.endpoints.size).toBe(0);
  });

  it('keeps an endpoint that Docker lists by the second look: a container that was just starting', async () => {
    const host = await startHost();
    const net = 'n'.repeat(64);
    const poolId = await createDockerNetwork(host, net, SUBNET);
    const id = 'c'.repeat(64);
    const { address } = await host.ipam.requestAddress({ poolId });
    await host.driver.createEndpoint({ networkId: net, endpointId: id, address, portMappings: [], driverOptions: {} });
    await host.driver.join({ networkId: net, endpointId: id, sandboxKey: 'x', portMappings: [] });
    const reconciling = patientReconciler(host, 100).run();
    await settle();
    // Docker commits the endpoint while the agent waits for its second look.
    host.docker.run(net, id, { containerId: 'c1', containerName: 'starting', labels: {} });
    await host.clock.advance(100);
    await reconciling;
    expect((await host.registry.listEndpoints('h1')).map((e) => e.id)).toEqual([id]);
    expect(host.dataplane.endpoints.size).toBe(1);
  });

  it('keeps an endpoint created while it waits for the second look, and removes what was left over on both', async () => {
    const host = await startHost();
    const net = 'n'.repeat(64);
    const poolId = await createDockerNetwork(host, net, SUBNET);
    const { address: orphan } = await host.ipam.requestAddress({ poolId }); // a leftover on both looks
    const looks = () => host.dataplane.callsTo('listEndpoints').length;
    const before = looks();
    const reconciling = patientReconciler(host, 200).run();
    await settle();
    expect(looks()).toBe(before + 1); // the first look is over
    // CreateEndpoint of a container Docker does not list until it has started.
    const id = 'd'.repeat(64);
    const { address } = await host.ipam.requestAddress({ poolId });
    await host.driver.createEndpoint({ networkId: net, endpointId: id, address, portMappings: [], driverOptions: {} });
    await host.driver.join({ networkId: net, endpointId: id, sandboxKey: 'x', portMappings: [] });
    await host.clock.advance(200);
    await reconciling;
    expect(looks()).toBe(before + 2);
    expect((await host.registry.listEndpoints('h1')).map((e) => e.id)).toEqual([id]);
    const held = (await host.registry.listAddresses(poolId)).map((a) => a.record.address);
    expect(held).toContain(address.split('/')[0]);
    expect(held).not.toContain(orphan.split('/')[0]);
  });
});
