import { BadRequestError, ConflictError, NotFoundError, NotSupportedError } from '../../../src/errors';
import { MemoryStore } from '../../../src/store/memory-store';
import { keys } from '../../../src/store/keys';
import type { ContainerNames } from '../../../src/labels/docker';
import { settle } from '../../helpers/fake-clock';
import { FakeDocker } from '../../helpers/fake-docker';
import { createDockerNetwork, testHost, type TestHost } from '../../helpers/host';
import { renderedRules } from '../../helpers/firewall-text';

/** Docker answering the agent's question for a container's names only once released. */
class NamesOnRelease extends FakeDocker {
  private open: () => void = () => undefined;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));

  release(): void {
    this.open();
  }

  override async containerNames(containerId: string): Promise<ContainerNames | undefined> {
    await this.gate;
    return super.containerNames(containerId);
  }
}

/** A store that counts reads, to tell which calls need none; its clients count into it too. */
class ReadCountingStore extends MemoryStore {
  reads = 0;

  override connect(): MemoryStore {
    return this;
  }

  override get(key: string): ReturnType<MemoryStore['get']> {
    this.reads++;
    return super.get(key);
  }

  override list(prefix: string): ReturnType<MemoryStore['list']> {
    this.reads++;
    return super.list(prefix);
  }
}

const NET = 'a'.repeat(64);
const EP = 'e1'.repeat(32);

const createNetwork = (host: TestHost) => createDockerNetwork(host, NET, '10.96.0.0/16');

/** Docker's calls for `docker run --net appnet`: RequestAddress, CreateEndpoint, Join. */
async function run(host: TestHost, poolId: string, endpointId: string, labels: Record<string, string> | null = { role: 'web' }) {
  const { address } = await host.ipam.requestAddress({ poolId });
  if (labels) host.docker.run(NET, endpointId, { containerId: `c-${endpointId}`, containerName: `n-${endpointId.slice(0, 4)}`, labels });
  await host.driver.createEndpoint({ networkId: NET, endpointId, address, portMappings: [], driverOptions: {} });
  const join = await host.driver.join({ networkId: NET, endpointId, sandboxKey: '/var/run/docker/netns/x', portMappings: [] });
  return { address, join };
}

describe('NetworkDriver', () => {
  let store: MemoryStore;
  let host: TestHost;

  beforeEach(async () => {
    store = new MemoryStore();
    host = testHost(store, 'h1', '192.0.2.1');
    await host.agent.start();
  });
  afterEach(async () => {
    await host.agent.stop();
    await store.close();
  });

  it('plumbs a container on Join and answers with its veth and the virtual gateway', async () => {
    const poolId = await createNetwork(host);
    const { address, join } = await run(host, poolId, EP);
    expect(join).toEqual({
      srcName: `sc${EP.slice(0, 11)}`,
      dstPrefix: 'eth',
      gateway: '10.96.0.1',
      staticRoutes: [],
      disableGatewayService: true,
    });
    expect(host.dataplane.endpoints.get(`slv${EP.slice(0, 11)}`)).toMatchObject({ address: address.split('/')[0], mtu: 1500 }); // auto: the underlay's
    expect([...host.dataplane.gateways]).toEqual(['10.96.0.1']);
    // The container's labels were learned during Join and stored with the endpoint.
    expect((await host.registry.getEndpoint('h1', EP))?.record).toMatchObject({ labels: { role: 'web' }, containerName: `n-${EP.slice(0, 4)}` });
  });

  it('has the endpoint\'s policy in force before Join returns, and keeps it fail-closed while its labels are unknown', async () => {
    const poolId = await createNetwork(host);
    const localSet = () => host.dataplane.firewall.ipsets.find((s) => s.name === 'sluice-local')?.members ?? [];
    const known = await run(host, poolId, EP);
    expect(localSet()).toEqual([`${known.address.split('/')[0]},slv${EP.slice(0, 11)}`]);
    const other = 'e2'.repeat(32);
    await run(host, poolId, other, null);
    expect(localSet()).toHaveLength(1);
    expect((await host.registry.getEndpoint('h1', other))?.record.labels).toBeNull();
  });

  it('removes the veth on Leave and the endpoint on DeleteEndpoint, leaving nothing', async () => {
    const poolId = await createNetwork(host);
    const { address } = await run(host, poolId, EP);
    await host.driver.leave(NET, EP);
    await settle(); // the veth goes once Leave has answered
    expect(host.dataplane.endpoints.size).toBe(0);
    await host.driver.deleteEndpoint(NET, EP);
    await host.ipam.releaseAddress(poolId, address.split('/')[0]!);
    expect(await host.registry.listEndpoints()).toEqual([]);
    expect((await host.registry.listAddresses(poolId)).map((a) => a.record.kind)).toEqual(['gateway']);
    // DeleteEndpoint does not wait for the firewall; an apply that starts now has dropped it.
    await host.agent.converge();
    expect(JSON.stringify(host.dataplane.firewall.ipsets)).not.toContain(address.split('/')[0]);
  });

  it('removes the veth on DeleteEndpoint when Docker sends no Leave (a Join that failed)', async () => {
    const poolId = await createNetwork(host);
    const { address } = await host.ipam.requestAddress({ poolId });
    await host.driver.createEndpoint({ networkId: NET, endpointId: EP, address, portMappings: [], driverOptions: {} });
    await settle(); // the veth is made once CreateEndpoint has answered
    expect(host.dataplane.endpoints.size).toBe(1);
    await host.driver.deleteEndpoint(NET, EP);
    await settle();
    expect({ veths: host.dataplane.endpoints.size, endpoints: await host.registry.listEndpoints() }).toEqual({ veths: 0, endpoints: [] });
  });

  it('writes a container start\'s endpoint once, at Join: labelled and bound to its address in one transaction', async () => {
    const poolId = await createNetwork(host);
    const { address } = await host.ipam.requestAddress({ poolId });
    host.docker.run(NET, EP, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
    const revision = async () => (await store.list('/')).revision;
    const before = await revision();
    await host.driver.createEndpoint({ networkId: NET, endpointId: EP, address, portMappings: [], driverOptions: {} });
    expect(await revision()).toBe(before);
    expect(await host.driver.endpointOperInfo(NET, EP)).toEqual({ 'sluice.node': 'h1', 'sluice.host_ifname': `slv${EP.slice(0, 11)}` });
    await host.driver.join({ networkId: NET, endpointId: EP, sandboxKey: 'x', portMappings: [] });
    expect(await revision()).toBe(before + 1);
    expect((await host.registry.getEndpoint('h1', EP))?.record).toMatchObject({ address: address.split('/')[0], labels: { role: 'web' } });
    expect((await host.registry.listAddresses(poolId)).find((a) => a.record.kind === 'endpoint')?.record.endpointId).toBe(EP);
  });

  it('reads nothing from the store on CreateEndpoint for the address its RequestAddress just claimed', async () => {
    const counting = new ReadCountingStore();
    const fresh = testHost(counting, 'h2', '192.0.2.2');
    await fresh.agent.start();
    try {
      const poolId = await createNetwork(fresh);
      const { address } = await fresh.ipam.requestAddress({ poolId });
      const before = counting.reads;
      await fresh.driver.createEndpoint({ networkId: NET, endpointId: EP, address, portMappings: [], driverOptions: {} });
      expect(counting.reads).toBe(before);
      // Positive control: a claim this IPAM did not make (an agent restarted since) is read.
      const other = 'e2'.repeat(32);
      const { address: second } = await fresh.ipam.requestAddress({ poolId });
      const restarted = testHost(counting, 'h2', '192.0.2.2', { dataplane: fresh.dataplane });
      const beforeRestarted = counting.reads;
      await restarted.driver.createEndpoint({ networkId: NET, endpointId: other, address: second, portMappings: [], driverOptions: {} });
      expect(counting.reads).toBeGreaterThan(beforeRestarted);
    } finally {
      await fresh.agent.stop();
    }
  });

  it('fails a Join whose address changed since CreateEndpoint, and Docker\'s cleanup leaves nothing', async () => {
    const poolId = await createNetwork(host);
    const localSet = () => host.dataplane.firewall.ipsets.find((s) => s.name === 'sluice-local')?.members ?? [];
    const { address } = await host.ipam.requestAddress({ poolId });
    host.docker.run(NET, EP, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
    await host.driver.createEndpoint({ networkId: NET, endpointId: EP, address, portMappings: [], driverOptions: {} });
    // Something rewrote the claim meanwhile (a reclaim, a tool): Join cannot know the address is still this endpoint's.
    const [claim] = (await host.registry.listAddresses(poolId)).filter((a) => a.record.kind === 'endpoint');
    const block = '10.96.0.0/26';
    const key = keys.address(poolId, block, claim!.record.address);
    expect(await store.compareAndSwap(key, JSON.stringify(claim!.record), claim!.modRevision)).toBe(true);
    await expect(host.driver.join({ networkId: NET, endpointId: EP, sandboxKey: 'x', portMappings: [] })).rejects.toThrow(
      new ConflictError(`Join: address ${address.split('/')[0]} changed since CreateEndpoint (released meanwhile?)`),
    );
    await host.driver.deleteEndpoint(NET, EP);
    await host.ipam.releaseAddress(poolId, address.split('/')[0]!);
    await settle();
    await host.agent.converge();
    expect({
      endpoints: await host.registry.listEndpoints(),
      addresses: (await host.registry.listAddresses(poolId)).map((a) => a.record.kind),
      veths: host.dataplane.endpoints.size,
      local: localSet(),
    }).toEqual({ endpoints: [], addresses: ['gateway'], veths: 0, local: [] });
    // Positive control: the same start without the interference is in force.
    await run(host, poolId, EP);
    expect(localSet()).toHaveLength(1);
  });

  it('finds in the store an endpoint its agent has not seen yet, for every call that names it', async () => {
    // Made through an agent of h2 that is gone now; the one that follows is not started, so its
    // view knows no endpoint, as before its first list.
    const before = testHost(store, 'h2', '192.0.2.2');
    const poolId = await createNetwork(before);
    const create = async (endpointId: string) => {
      const { address } = await before.ipam.requestAddress({ poolId });
      await before.driver.createEndpoint({ networkId: NET, endpointId, address, portMappings: [], driverOptions: {} });
      await before.driver.join({ networkId: NET, endpointId, sandboxKey: 'x', portMappings: [] });
    };
    await create(EP);
    const other = 'e2'.repeat(32);
    await create(other);
    const unseen = testHost(store, 'h2', '192.0.2.2', { dataplane: before.dataplane });
    expect(await unseen.driver.endpointOperInfo(NET, EP)).toEqual({ 'sluice.node': 'h2', 'sluice.host_ifname': `slv${EP.slice(0, 11)}` });
    await unseen.driver.deleteEndpoint(NET, EP);
    await settle();
    expect({ veths: [...unseen.dataplane.endpoints.keys()], endpoints: (await unseen.registry.listEndpoints('h2')).map((e) => e.id) }).toEqual({
      veths: [`slv${other.slice(0, 11)}`],
      endpoints: [other],
    });
    const ports = [{ proto: 'tcp' as const, containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }];
    await unseen.driver.programExternalConnectivity(NET, other, ports);
    expect((await unseen.registry.getEndpoint('h2', other))?.record.ports).toEqual(ports);
  });

  it('does not bring back the record of a container removed while the agent asked Docker for its names (docker run --rm true)', async () => {
    const docker = new NamesOnRelease();
    const racing = testHost(store, 'h2', '192.0.2.2', { docker });
    await racing.agent.start();
    try {
      const poolId = await createNetwork(racing);
      await run(racing, poolId, EP);
      docker.names.set(`c-${EP}`, { name: 'quick', aliases: new Map() });
      docker.emit({ kind: 'container', action: 'start', containerId: `c-${EP}`, name: 'quick', labels: {} });
      await racing.driver.leave(NET, EP);
      await racing.driver.deleteEndpoint(NET, EP);
      docker.release();
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      // A record brought back would later be reconciled away, releasing whoever holds its address then.
      expect(await racing.registry.listEndpoints('h2')).toEqual([]);
    } finally {
      await racing.agent.stop();
    }
  });

  it('has nothing of a removed container in force when the next container to get its address returns from Join', async () => {
    const poolId = await createNetwork(host);
    const localSet = () => host.dataplane.firewall.ipsets.find((s) => s.name === 'sluice-local')?.members ?? [];
    const { address } = await run(host, poolId, EP);
    await host.driver.leave(NET, EP);
    await host.driver.deleteEndpoint(NET, EP);
    await host.ipam.releaseAddress(poolId, address.split('/')[0]!);
    const next = 'e2'.repeat(32);
    const reused = await run(host, poolId, next);
    expect(reused.address).toBe(address);
    expect(localSet()).toEqual([`${address.split('/')[0]},slv${next.slice(0, 11)}`]);
  });

  it('refuses a -d sluice network that does not use sluice IPAM, telling the right command', async () => {
    await expect(
      host.driver.createNetwork({
        networkId: NET,
        generic: {},
        internal: false,
        ipv6: false,
        ipv4Data: [{ addressSpace: 'LocalDefault', pool: '172.18.0.0/16', gateway: '172.18.0.1/16', auxAddresses: {} }],
        ipv6Data: [],
      }),
    ).rejects.toThrow(new BadRequestError('sluice networks need sluice IPAM: docker network create -d sluice --ipam-driver sluice --subnet CIDR NAME'));
  });

  it('refuses a network without an IPv4 pool, and names unknown networks and endpoints', async () => {
    await expect(
      host.driver.createNetwork({ networkId: NET, generic: {}, internal: false, ipv6: true, ipv4Data: [], ipv6Data: [] }),
    ).rejects.toBeInstanceOf(BadRequestError);
    await expect(host.driver.join({ networkId: 'f'.repeat(64), endpointId: EP, sandboxKey: 'x', portMappings: [] })).rejects.toThrow(
      /unknown network ffffffffffff/,
    );
    await createNetwork(host);
    await expect(host.driver.join({ networkId: NET, endpointId: EP, sandboxKey: 'x', portMappings: [] })).rejects.toBeInstanceOf(NotFoundError);
  });

  describe('dual stack (--ipv6)', () => {
    const POOL6 = 'fd00:96::-64';
    const createDual = (h: TestHost, networkId = NET, subnet = '10.96.0.0/16', ipv6Subnet = 'fd00:96::/64') =>
      createDockerNetwork(h, networkId, subnet, { ipv6Subnet });
    /** Docker's calls for `docker run` on a dual-stack network: both addresses, CreateEndpoint, Join. */
    async function runDual(h: TestHost, poolId: string, endpointId: string) {
      const [{ address }, { address: addressIPv6 }] = [await h.ipam.requestAddress({ poolId }), await h.ipam.requestAddress({ poolId: POOL6 })];
      h.docker.run(NET, endpointId, { containerId: `c-${endpointId}`, containerName: 'web', labels: { role: 'web' } });
      await h.driver.createEndpoint({ networkId: NET, endpointId, address, addressIPv6, portMappings: [], driverOptions: {} });
      return { address, addressIPv6, join: await h.driver.join({ networkId: NET, endpointId, sandboxKey: 'x', portMappings: [] }) };
    }

    it('gives a container both addresses and both gateways, and its veth the IPv6 address and gateway to answer', async () => {
      const poolId = await createDual(host);
      expect((await host.registry.getNetwork(poolId))?.record.settings?.ipv6Subnet).toBe('fd00:96::/64');
      const { addressIPv6, join } = await runDual(host, poolId, EP);
      expect(addressIPv6).toBe('fd00:96::2/64');
      expect(join).toMatchObject({ gateway: '10.96.0.1', gatewayIPv6: 'fd00:96::1' });
      // The pool through the gateway: the host answers neighbour discovery for the gateway alone.
      expect(join.staticRoutes).toEqual([
        { destination: 'fd00:96::1/128', routeType: 1 },
        { destination: 'fd00:96::/65', routeType: 0, nextHop: 'fd00:96::1' },
        { destination: 'fd00:96:0:0:8000::/65', routeType: 0, nextHop: 'fd00:96::1' },
      ]);
      expect((await host.registry.getEndpoint('h1', EP))?.record).toMatchObject({ address: '10.96.0.2', addressV6: 'fd00:96::2' });
      expect(host.dataplane.endpoints.get(`slv${EP.slice(0, 11)}`)).toMatchObject({ addressV6: 'fd00:96::2', gatewayV6: 'fd00:96::1' });
      // Both claims name the endpoint: neither address is released while it lives.
      const claims = [...(await host.registry.listAddresses(poolId)), ...(await host.registry.listAddresses(POOL6))].filter((a) => a.record.kind === 'endpoint');
      expect(claims.map((a) => a.record.endpointId)).toEqual([EP, EP]);
      await expect(host.ipam.releaseAddress(POOL6, 'fd00:96::2')).rejects.toThrow(/in use by endpoint/);
    });

    it('releases both addresses after the container goes, and both pools\' blocks on network rm', async () => {
      const poolId = await createDual(host);
      await runDual(host, poolId, EP);
      await host.driver.leave(NET, EP);
      await host.driver.deleteEndpoint(NET, EP);
      await host.ipam.releaseAddress(poolId, '10.96.0.2');
      await host.ipam.releaseAddress(POOL6, 'fd00:96::2');
      await host.driver.deleteNetwork(NET);
      expect([...(await host.registry.listBlocks(poolId)), ...(await host.registry.listBlocks(POOL6))]).toEqual([]);
    });

    it('refuses another host\'s create without --ipv6, and an IPv6 subnet another network has', async () => {
      await createDual(host);
      const h2 = testHost(store, 'h2', '192.0.2.2');
      await expect(createDockerNetwork(h2, 'b'.repeat(64), '10.96.0.0/16')).rejects.toThrow(
        new ConflictError('sluice network 10.96.0.0/16 was created with --ipv6 --subnet fd00:96::/64: create it on this host the same way'),
      );
      await expect(createDual(host, 'c'.repeat(64), '10.97.0.0/16')).rejects.toThrow(
        new ConflictError('IPv6 subnet fd00:96::/64 belongs to sluice network 10.96.0.0/16: give this network an IPv6 subnet of its own'),
      );
    });

    it('keeps a dual-stack network\'s IPv6 pool while any host has the network, even with no IPv6 address in use', async () => {
      await createDual(host);
      const h2 = testHost(store, 'h2', '192.0.2.2');
      await createDual(h2, 'b'.repeat(64));
      await h2.driver.deleteNetwork('b'.repeat(64));
      await h2.ipam.releasePool(POOL6);
      expect(await host.registry.getNetwork(POOL6)).toBeDefined();
    });
  });

  it('publishes -p mappings on ProgramExternalConnectivity and withdraws them on Revoke', async () => {
    const poolId = await createNetwork(host);
    const { address } = await run(host, poolId, EP);
    await host.driver.programExternalConnectivity(NET, EP, [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }]);
    const dnat = () => renderedRules(host.dataplane.firewall.nat);
    expect(dnat()).toContain(`${address.split('/')[0]}:80`);
    await host.driver.revokeExternalConnectivity(NET, EP);
    expect(dnat()).not.toContain(':80');
  });

  it('writes nothing and applies nothing for a container without ports on Program/RevokeExternalConnectivity', async () => {
    const poolId = await createNetwork(host);
    await run(host, poolId, EP);
    const before = (await host.registry.getEndpoint('h1', EP))?.modRevision;
    const applies = () => host.dataplane.calls.filter((c) => c.method === 'applyFirewall').length;
    const applied = applies();
    await host.driver.programExternalConnectivity(NET, EP, []);
    await host.driver.revokeExternalConnectivity(NET, EP);
    expect({ revision: (await host.registry.getEndpoint('h1', EP))?.modRevision, applies: applies() }).toEqual({ revision: before, applies: applied });
  });

  it('keeps the network\'s blocks while a container holds an address, and gives them up on network rm', async () => {
    const poolId = await createNetwork(host);
    await run(host, poolId, EP);
    expect(await host.registry.listBlocks(poolId)).toHaveLength(1);
    await host.driver.deleteNetwork(NET);
    expect(await host.registry.listBlocks(poolId)).toHaveLength(1);
    expect(await host.registry.getNetwork(poolId)).toBeDefined();
  });

  it('forgets a network no host uses after docker network rm', async () => {
    const poolId = await createNetwork(host);
    await host.ipam.releasePool(poolId);
    await host.driver.deleteNetwork(NET);
    expect(await host.registry.getNetwork(poolId)).toBeUndefined();
    expect(host.dataplane.gateways.size).toBe(0);
  });

  describe('docker network create options', () => {
    const MTU = 'com.docker.network.driver.mtu';

    it('--internal: Join gives no gateway, so the container has no default route out, only a link route to the resolver', async () => {
      const poolId = await createDockerNetwork(host, NET, '10.96.0.0/16', { internal: true });
      const { join } = await run(host, poolId, EP);
      expect(join.gateway).toBe('');
      expect(join.staticRoutes).toEqual([{ destination: '169.254.53.53/32', routeType: 1 }]);
      expect((await host.registry.getNetwork(poolId))?.record.settings).toEqual({ internal: true, auxAddresses: {} });
    });

    it('-o mtu: the container\'s veth gets that MTU', async () => {
      const poolId = await createDockerNetwork(host, NET, '10.96.0.0/16', { generic: { [MTU]: '1400' } });
      await run(host, poolId, EP);
      expect(host.dataplane.endpoints.get(`slv${EP.slice(0, 11)}`)?.mtu).toBe(1400);
    });

    it('refuses another host\'s create with other options, recording nothing for it', async () => {
      await createDockerNetwork(host, NET, '10.96.0.0/16', { internal: true });
      const h2 = testHost(store, 'h2', '192.0.2.2');
      await h2.agent.start();
      try {
        await expect(createDockerNetwork(h2, NET, '10.96.0.0/16')).rejects.toThrow(
          new ConflictError('sluice network 10.96.0.0/16 was created with --internal: create it on this host the same way'),
        );
        expect(await h2.registry.getDockerNet('h2', NET)).toBeUndefined();
        await expect(createDockerNetwork(h2, NET, '10.96.0.0/16', { internal: true })).resolves.toBe('10.96.0.0-16');
      } finally {
        await h2.agent.stop();
      }
    });

    it('refuses an unknown -o before anything is recorded', async () => {
      await expect(createDockerNetwork(host, NET, '10.96.0.0/16', { generic: { 'com.docker.network.bridge.name': 'br0' } })).rejects.toBeInstanceOf(
        NotSupportedError,
      );
      expect(await host.registry.getDockerNet('h1', NET)).toBeUndefined();
      expect((await host.registry.getNetwork('10.96.0.0-16'))?.record.settings).toBeUndefined();
    });
  });

  describe('-p that Sluice cannot publish', () => {
    it('refuses -p 80 (no host port) at CreateEndpoint, leaving no endpoint or veth', async () => {
      const poolId = await createNetwork(host);
      const { address } = await host.ipam.requestAddress({ poolId });
      const portMappings = [{ proto: 'tcp' as const, containerPort: 80, hostPort: 0, hostPortEnd: 0 }];
      await expect(host.driver.createEndpoint({ networkId: NET, endpointId: EP, address, portMappings, driverOptions: {} })).rejects.toThrow(
        /-p 80\/tcp \(or -P\) has no host port/,
      );
      expect(await host.registry.listEndpoints()).toEqual([]);
      expect(host.dataplane.endpoints.size).toBe(0);
    });

    it('refuses sctp on ProgramExternalConnectivity, publishing nothing', async () => {
      const poolId = await createNetwork(host);
      await run(host, poolId, EP);
      await expect(
        host.driver.programExternalConnectivity(NET, EP, [{ proto: 'sctp', containerPort: 9000, hostPort: 9000, hostPortEnd: 9000 }]),
      ).rejects.toBeInstanceOf(NotSupportedError);
      expect(renderedRules(host.dataplane.firewall.nat)).not.toContain('9000');
    });
  });
});
