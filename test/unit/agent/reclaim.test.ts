import { reclaimNode, reclaimable, releaseNode } from '../../../src/agent/reclaim';
import { ClusterView } from '../../../src/agent/view';
import { status } from '../../../src/cli/commands';
import { endpointIfnames } from '../../../src/firewall/names';
import { Ipam } from '../../../src/ipam/ipam-service';
import { blockOf, formatCidr, formatIp, parseIp } from '../../../src/net/ipv4';
import * as ip from '../../../src/net/ip';
import { MemoryStore } from '../../../src/store/memory-store';
import { Registry } from '../../../src/store/registry';
import { RETRY_MS } from '../../../src/agent/reporter';
import { FakeClock, settle } from '../../helpers/fake-clock';
import { createDockerNetwork, eventually, testHost, type TestHost } from '../../helpers/host';

const NET = '10.96.0.0-16';
const LAST_SEEN = Date.parse('2030-01-01T00:00:00Z');
const GRACE_S = 600;

/** Node `name`, last seen at LAST_SEEN, holding one block of 10.96.0.0/16 with `addresses` addresses (an endpoint each) and a Docker network. */
async function deadNode(registry: Registry, name: string, addresses: number, blockSize = 26): Promise<void> {
  await registry.putNode({ name, ip: '192.0.2.9', backend: 'auto', version: 'test', lastSeen: new Date(LAST_SEEN).toISOString() });
  const ipam = new Ipam(registry, { node: name, defaultSupernet: ip.parseCidr('10.96.0.0/12')!, defaultSubnetPrefix: 16, defaultBlockSize: blockSize });
  const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
  // The first address through IPAM claims the block; the others are written straight into it.
  const first = parseIp((await ipam.requestAddress({ poolId })).address.split('/')[0]!)!;
  const block = formatCidr(blockOf(first, blockSize));
  await registry.releaseAddress(poolId, block, formatIp(first));
  for (let i = 0; i < addresses; i++) {
    const ip = formatIp(first + i);
    const id = i.toString(16).padStart(64, '0');
    await registry.claimAddress(block, { network: poolId, address: ip, node: name, kind: 'endpoint', endpointId: id });
    await registry.putEndpoint({ id, network: poolId, node: name, address: ip, hostIfname: endpointIfnames(id).hostIfname, labels: {}, ports: [] });
  }
  await registry.putDockerNet(name, 'd'.repeat(64), poolId);
}

async function viewOf(registry: Registry): Promise<ClusterView> {
  const view = new ClusterView();
  view.reset((await registry.store.list('/sluice/v1/')).kvs);
  return view;
}

/** Everything of `name` still in the store, as "kind" lines. */
async function holdings(registry: Registry, name: string): Promise<string[]> {
  const { blocks, rest } = await registry.holdingsOf(name);
  return [...blocks.flatMap((b) => b.held), ...rest].map((h) => h.key.replace(/^\/sluice\/v1\/([a-z]+)\/.*$/, '$1'));
}

describe('reclaim: which dead nodes, and releasing them', () => {
  let store: MemoryStore;
  let registry: Registry;
  beforeEach(() => {
    store = new MemoryStore();
    registry = new Registry(store);
  });
  afterEach(() => store.close());

  it('is a dead node past the grace period that still holds something, never one within it, alive, or this node', async () => {
    await deadNode(registry, 'gone', 1);
    const view = await viewOf(registry);
    const names = (now: number, me = 'h1') => reclaimable(view, me, now, GRACE_S).map((n) => n.name);
    expect(names(LAST_SEEN + GRACE_S * 1000 + 1)).toEqual(['gone']);
    expect(names(LAST_SEEN + GRACE_S * 1000 - 1)).toEqual([]);
    expect(names(LAST_SEEN + GRACE_S * 1000 + 1, 'gone')).toEqual([]);
    view.alive.add('gone');
    expect(names(LAST_SEEN + GRACE_S * 1000 + 1)).toEqual([]);
  });

  it('is not a node whose holdings are already all released', async () => {
    await registry.putNode({ name: 'empty', ip: '192.0.2.8', backend: 'auto', version: 'test', lastSeen: new Date(LAST_SEEN).toISOString() });
    expect(reclaimable(await viewOf(registry), 'h1', LAST_SEEN + 10 * GRACE_S * 1000, GRACE_S)).toEqual([]);
  });

  it('lets exactly one of three racing agents reclaim, releasing blocks, addresses and endpoints but not the gateway', async () => {
    await deadNode(registry, 'gone', 3);
    const agents = ['h1', 'h2', 'h3'].map((name) => ({ name, registry: new Registry(store.connect()) }));
    const results = await Promise.all(agents.map((a) => reclaimNode(a.registry, 'gone', a.name, LAST_SEEN + 3600_000)));
    const winners = results.flatMap((r, i) => (r ? [{ by: agents[i]!.name, ...r }] : []));
    expect(winners).toHaveLength(1);
    expect(winners[0]).toMatchObject({ blocks: [{ block: '10.96.0.0/26', node: 'gone' }], addresses: 3, complete: true });
    expect(await holdings(registry, 'gone')).toEqual([]);
    expect((await registry.listAddresses(NET)).map((a) => a.record.kind)).toEqual(['gateway']);
    const node = (await registry.getNode('gone'))!.record;
    expect(node.reclaimed).toEqual({ at: new Date(LAST_SEEN + 3600_000).toISOString(), by: winners[0]!.by });
    expect(await status(registry)).toMatch(/gone\s+dead \(last seen 2030-01-01T00:00:00.000Z\), blocks reclaimed by h\d at 2030-01-01T01:00:00.000Z/);
  });

  it('reclaims nothing of a node that is alive again', async () => {
    await deadNode(registry, 'back', 2);
    await registry.markAlive('back', await store.grantLease(30));
    expect(await reclaimNode(registry, 'back', 'h1', LAST_SEEN + 3600_000)).toBeUndefined();
    expect(await holdings(registry, 'back')).toEqual(['addresses', 'endpoints', 'addresses', 'endpoints', 'blocks']);
    expect((await registry.getNode('back'))!.record.reclaimed).toBeUndefined();
  });

  it('stops releasing as soon as the node rewrites its record, even before its liveness is back', async () => {
    await deadNode(registry, 'back', 2);
    const before = (await registry.getNode('back'))!;
    const marked = { ...before.record, reclaimed: { at: new Date(LAST_SEEN + 3600_000).toISOString(), by: 'h1' } };
    expect(await registry.markReclaimed(marked, before.modRevision)).toBe(true);
    const markedRevision = (await registry.getNode('back'))!.modRevision;
    // The node comes back between the mark and the releases: it rewrites its record first.
    expect(await registry.replaceNode({ ...marked, lastSeen: new Date(LAST_SEEN + 3700_000).toISOString() }, markedRevision)).toBe(true);
    expect(await releaseNode(registry, 'back', markedRevision)).toEqual({ blocks: [], addresses: 0, complete: false });
    expect(await holdings(registry, 'back')).toHaveLength(5);
    // Positive control: at the current revision the same release goes through.
    const current = (await registry.getNode('back'))!.modRevision;
    expect((await releaseNode(registry, 'back', current)).complete).toBe(true);
    expect(await holdings(registry, 'back')).toEqual([]);
  });

  it('releases a block of 1,000 addresses and their endpoints in transactions etcd accepts', async () => {
    await deadNode(registry, 'big', 1000, 22);
    const transactions: number[] = [];
    const watch = store.watch('/sluice/v1/', (await store.list('/')).revision + 1, {
      onEvents: (events) => transactions.push(...new Set(events.map((e) => (e.type === 'put' ? e.kv.modRevision : e.modRevision)))),
      onReset: () => undefined,
    });
    const released = await reclaimNode(registry, 'big', 'h1', LAST_SEEN + 3600_000);
    expect(released).toMatchObject({ blocks: [{ block: '10.96.0.0/22' }], addresses: 1000, complete: true });
    expect(await holdings(registry, 'big')).toEqual([]);
    // The mark, then the block's 2,001 keys by 100.
    await eventually(() => expect(transactions).toHaveLength(1 + 21));
    await watch.close();
  });
});

describe('Agent: dead hosts, automatically', () => {
  let store: MemoryStore;
  let hosts: TestHost[];
  let clock: FakeClock;
  beforeEach(() => {
    store = new MemoryStore();
    hosts = [];
    clock = new FakeClock();
  });
  afterEach(async () => {
    for (const host of hosts) await host.agent.stop();
    await store.close();
  });

  function host(name: string, ip: string, reuse: Partial<Pick<TestHost, 'dataplane' | 'docker'>> = {}): TestHost {
    // Looks for dead nodes every 10 s (the resync interval).
    const h = testHost(store, name, ip, { ...reuse, clock, flags: { 'grace-period': String(GRACE_S), 'resync-interval': '10' } });
    hosts.push(h);
    return h;
  }

  it('reclaims a dead host\'s block after the grace period, and fences the host when it comes back', async () => {
    const h1 = host('h1', '192.0.2.1');
    const h2 = host('h2', '192.0.2.2');
    await h1.agent.start();
    await h2.agent.start();
    const net = 'n'.repeat(64);
    const poolId = await createDockerNetwork(h2, net, '10.96.0.0/16');
    const id = 'e'.repeat(64);
    const { address } = await h2.ipam.requestAddress({ poolId });
    h2.docker.run(net, id, { containerId: 'c1', containerName: 'stale', labels: {} });
    await h2.driver.createEndpoint({ networkId: net, endpointId: id, address, portMappings: [], driverOptions: {} });
    await h2.driver.join({ networkId: net, endpointId: id, sandboxKey: 'x', portMappings: [] });
    await eventually(() => expect(h1.dataplane.routes.get('10.96.0.0/26')).toMatchObject({ nodeIp: '192.0.2.2' }));

    // h2 dies: its agent stops, its lease runs out.
    await h2.agent.stop();
    await store.delete('/sluice/v1/alive/h2');
    const lastSeen = Date.parse((await h1.registry.getNode('h2'))!.record.lastSeen);
    await clock.advance(lastSeen + GRACE_S * 1000 - clock.now());
    expect((await h1.registry.listBlocks(poolId)).map((b) => b.node)).toEqual(['h2']);
    await clock.advance(10_000); // the next look, past the grace period
    expect(await h1.registry.listBlocks(poolId)).toEqual([]);
    expect(await h1.registry.listEndpoints('h2')).toEqual([]);
    await eventually(() => expect(h1.dataplane.routes.has('10.96.0.0/26')).toBe(false));

    // The block is free: h1 takes it, and gets the very address h2's container had.
    await createDockerNetwork(h1, 'm'.repeat(64), '10.96.0.0/16');
    expect((await h1.ipam.requestAddress({ poolId })).address).toBe(address);

    // h2's agent comes back before its dockerd, with the old container's veth still there: fenced at once.
    const back = host('h2', '192.0.2.2', { dataplane: h2.dataplane, docker: h2.docker });
    expect(back.dataplane.endpoints.size).toBe(1);
    back.docker.away = true;
    const starting = back.agent.start();
    await settle();
    expect(back.dataplane.endpoints.size).toBe(0);
    back.docker.away = false;
    await clock.advance(RETRY_MS);
    await starting;
    expect(back.dataplane.routes.get('10.96.0.0/26')).toMatchObject({ kind: 'vxlan', nodeIp: '192.0.2.1' });
    expect(await status(back.registry)).toMatch(/h2\s+alive, fenced since \S+: blocks reclaimed by h1 at /);

    // Positive control: a container started after the return keeps its network.
    const fresh = 'f'.repeat(64);
    const { address: freshAddress } = await back.ipam.requestAddress({ poolId });
    back.docker.run(net, fresh, { containerId: 'c2', containerName: 'fresh', labels: {} });
    await back.driver.createEndpoint({ networkId: net, endpointId: fresh, address: freshAddress, portMappings: [], driverOptions: {} });
    await clock.advance(60_000); // the liveness timer registers again
    expect([...back.dataplane.endpoints.keys()]).toEqual([`slv${fresh.slice(0, 11)}`]);
  });

  it('finds an address leaked while the agent runs, on its own timer', async () => {
    const h1 = testHost(store, 'h1', '192.0.2.1', { clock, agent: { reconcileIntervalMs: 20_000 } });
    hosts.push(h1);
    await h1.agent.start();
    const poolId = await createDockerNetwork(h1, 'n'.repeat(64), '10.96.0.0/16');
    // Docker asked for an address and then never used it, nor said so.
    const { address } = await h1.ipam.requestAddress({ poolId });
    const leaked = address.split('/')[0];
    const held = async () => (await h1.registry.listAddresses(poolId)).map((a) => a.record.address);
    await clock.advance(19_999);
    expect(await held()).toContain(leaked);
    await clock.advance(1);
    expect(await held()).not.toContain(leaked);
  });
});
