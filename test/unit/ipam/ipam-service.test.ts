import { BadRequestError, ConflictError, ExhaustedError } from '../../../src/errors';
import { GATEWAY_REQUEST, Ipam, type IpamOptions, type KnownPools, defineNetwork, newNetworkRecord } from '../../../src/ipam/ipam-service';
import type { BlockRecord, NetworkRecord, NetworkSettings } from '../../../src/model';
import { parseCidr, parseIp } from '../../../src/net/ipv4';
import * as net from '../../../src/net/ip';
import { MemoryStore } from '../../../src/store/memory-store';
import { Registry } from '../../../src/store/registry';

function ipamFor(registry: Registry, node: string, overrides: Partial<IpamOptions> = {}, known?: KnownPools): Ipam {
  const options = { node, defaultSupernet: net.parseCidr('10.96.0.0/12')!, defaultSubnetPrefix: 16, defaultBlockSize: 26, ...overrides };
  return new Ipam(registry, options, known);
}

/** What an agent's view holds while its watch lags behind the store: set by the test, never updated. */
class LaggingView implements KnownPools {
  networks = new Map<string, NetworkRecord>();
  blocks: BlockRecord[] = [];

  knownPool(net: string): NetworkRecord | undefined {
    return this.networks.get(net);
  }

  knownBlocks(net: string): BlockRecord[] {
    return this.blocks.filter((b) => b.network === net);
  }
}

const ip = (cidr: string) => cidr.split('/')[0]!;

/** `docker network create --subnet`: RequestPool, then CreateNetwork settling the network's options. */
async function createdPool(ipam: Ipam, subnet: string, settings: NetworkSettings = { internal: false, auxAddresses: {} }): Promise<string> {
  const { poolId } = await ipam.requestPool({ pool: subnet, options: {}, v6: subnet.includes(':') });
  await ipam.settleNetwork(poolId, settings, () => undefined);
  return poolId;
}

describe('Ipam', () => {
  let store: MemoryStore;
  let registry: Registry;
  let ipam: Ipam;

  beforeEach(() => {
    store = new MemoryStore();
    registry = new Registry(store);
    ipam = ipamFor(registry, 'h1');
  });
  afterEach(() => store.close());

  it('gives a --subnet pool the same ID on every host, with the first address as gateway', async () => {
    const a = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    const b = await ipamFor(registry, 'h2').requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    expect(a).toEqual({ poolId: '10.96.0.0-16', pool: '10.96.0.0/16', data: { 'com.docker.network.gateway': '10.96.0.1/16' } });
    expect(b.poolId).toBe(a.poolId);
  });

  it('refuses a subnet overlapping another sluice network, naming it', async () => {
    await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    await expect(ipam.requestPool({ pool: '10.96.128.0/17', options: {}, v6: false })).rejects.toThrow(
      new ConflictError('subnet 10.96.128.0/17 overlaps sluice network 10.96.0.0/16: pick a subnet outside it'),
    );
  });

  it('refuses a bad --ip-range and malformed subnets with clear errors', async () => {
    await expect(ipam.requestPool({ pool: '10.1.0.0/16', subPool: '10.2.1.0/24', options: {}, v6: false })).rejects.toThrow(
      new BadRequestError('--ip-range 10.2.1.0/24 is not an IPv4 CIDR inside --subnet 10.1.0.0/16'),
    );
    await expect(ipam.requestPool({ subPool: '10.1.1.0/24', options: {}, v6: false })).rejects.toThrow(/--ip-range 10.1.1.0\/24 needs --subnet/);
    await expect(ipam.requestPool({ pool: '10.1.0.0/33', options: {}, v6: false })).rejects.toBeInstanceOf(BadRequestError);
    await expect(ipam.requestPool({ pool: '10.1.0.0/16', options: { 'block-size': '8' }, v6: false })).rejects.toThrow(/block-size=8/);
  });

  it('picks a different free /16 for each pool requested without --subnet, and says when none is left', async () => {
    const small = ipamFor(registry, 'h1', { defaultSupernet: net.parseCidr('10.200.0.0/15')! });
    const a = await small.requestPool({ options: {}, v6: false });
    const b = await small.requestPool({ options: {}, v6: false });
    expect([a.pool, b.pool]).toEqual(['10.200.0.0/16', '10.201.0.0/16']);
    await expect(small.requestPool({ options: {}, v6: false })).rejects.toBeInstanceOf(ExhaustedError);
  });

  it('forgets an unused pool on ReleasePool, so it can be picked again', async () => {
    const a = await ipam.requestPool({ options: {}, v6: false });
    await ipam.releasePool(a.poolId);
    const b = await ipam.requestPool({ options: {}, v6: false });
    expect(b.pool).toBe(a.pool);
  });

  it('hands out distinct addresses, skipping the network address and the gateway', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    const first = await ipam.requestAddress({ poolId });
    const second = await ipam.requestAddress({ poolId });
    expect([first.address, second.address]).toEqual(['10.96.0.2/16', '10.96.0.3/16']);
    const gateway = await ipam.requestAddress({ poolId, requestType: GATEWAY_REQUEST });
    expect(gateway.address).toBe('10.96.0.1/16');
  });

  it('never hands out one address twice under 50 concurrent requests from each of three hosts', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    const hosts = ['h1', 'h2', 'h3'].map((node) => ipamFor(new Registry(store), node));
    const results = await Promise.all(hosts.flatMap((h) => Array.from({ length: 50 }, () => h.requestAddress({ poolId }))));
    const addresses = results.map((r) => r.address);
    expect(new Set(addresses).size).toBe(150);
    // Each host allocated from blocks it holds alone.
    const blocks = await registry.listBlocks(poolId);
    expect(new Set(blocks.map((b) => b.block)).size).toBe(blocks.length);
    for (const { record } of await registry.listAddresses(poolId)) {
      if (record.kind !== 'endpoint') continue;
      const block = blocks.find((b) => parseCidr(`${record.address}/26`)!.base === parseCidr(b.block)!.base);
      expect(block?.node).toBe(record.node);
    }
  });

  it('gives --ip exactly, and refuses it when taken, outside the pool, or in another host\'s block', async () => {
    const poolId = await createdPool(ipam, '10.96.0.0/16');
    expect(await ipam.requestAddress({ poolId, address: '10.96.3.7' })).toEqual({ address: '10.96.3.7/16' });
    await expect(ipam.requestAddress({ poolId, address: '10.96.3.7' })).rejects.toThrow(/already in use on node h1/);
    await expect(ipam.requestAddress({ poolId, address: '10.97.0.5' })).rejects.toThrow(/outside the network's subnet/);
    await expect(ipam.requestAddress({ poolId, address: '10.96.255.255' })).rejects.toThrow(/broadcast/);
    await expect(ipamFor(registry, 'h2').requestAddress({ poolId, address: '10.96.3.8' })).rejects.toThrow(
      /in block 10.96.3.0\/26, held by node h1/,
    );
  });

  it('reuses a released address, and ignores a release of another host\'s address', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    const { address } = await ipam.requestAddress({ poolId });
    await ipamFor(registry, 'h2').releaseAddress(poolId, ip(address));
    expect((await registry.listAddresses(poolId)).map((a) => a.record.address)).toContain(ip(address));
    await ipam.releaseAddress(poolId, ip(address));
    expect((await ipam.requestAddress({ poolId })).address).toBe(address);
  });

  it('claims further blocks as blocks fill, then reports an exhausted pool', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.99.0.0/28', options: { 'block-size': '30' }, v6: false });
    const got: string[] = [];
    // 16 addresses - network - broadcast - gateway = 13 usable.
    for (let i = 0; i < 13; i++) got.push((await ipam.requestAddress({ poolId })).address);
    expect(new Set(got).size).toBe(13);
    expect((await registry.listBlocks(poolId)).length).toBe(4);
    await expect(ipam.requestAddress({ poolId })).rejects.toThrow(/network 10.99.0.0\/28 is full/);
  });

  it('keeps the gateway address for the network when another host releases it at network rm', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    await ipam.releaseAddress(poolId, '10.96.0.1');
    await expect(ipam.requestAddress({ poolId, address: '10.96.0.1' })).rejects.toThrow(/gateway/);
  });

  it('accepts --gateway while no host uses the network, and refuses a different one later', async () => {
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    expect(await ipam.requestAddress({ poolId, address: '10.96.0.254', requestType: GATEWAY_REQUEST })).toEqual({ address: '10.96.0.254/16' });
    await ipam.requestAddress({ poolId });
    await expect(ipamFor(registry, 'h2').requestAddress({ poolId, address: '10.96.0.9', requestType: GATEWAY_REQUEST })).rejects.toThrow(
      /use --gateway 10.96.0.254/,
    );
  });

  it('takes the same --gateway given on two hosts at once, and never hands it to a container', async () => {
    const hosts = [ipam, ipamFor(registry, 'h2')];
    const pools = await Promise.all(hosts.map((h) => h.requestPool({ pool: '10.96.0.0/28', options: {}, v6: false })));
    const gateways = await Promise.all(
      hosts.map((h, i) => h.requestAddress({ poolId: pools[i]!.poolId, address: '10.96.0.14', requestType: GATEWAY_REQUEST })),
    );
    expect(gateways).toEqual([{ address: '10.96.0.14/28' }, { address: '10.96.0.14/28' }]);
    const poolId = pools[0]!.poolId;
    const handedOut: string[] = [];
    for (;;) {
      const got = await ipam.requestAddress({ poolId }).catch((err: unknown) => err);
      if (got instanceof ExhaustedError) break;
      handedOut.push(ip((got as { address: string }).address));
    }
    // 16 - network - broadcast - gateway: the default gateway .1 is free again.
    expect(handedOut).toHaveLength(13);
    expect(handedOut).toContain('10.96.0.1');
    expect(handedOut).not.toContain('10.96.0.14');
  });

  it('releases a host\'s empty blocks and keeps those still holding addresses', async () => {
    const poolId = await createdPool(ipam, '10.96.0.0/16');
    await ipam.requestAddress({ poolId, address: '10.96.1.5' });
    const { address } = await ipam.requestAddress({ poolId, address: '10.96.2.5' });
    await ipam.releaseAddress(poolId, ip(address));
    await ipam.releaseBlocks(poolId);
    expect((await registry.listBlocks(poolId)).map((b) => b.block)).toEqual(['10.96.1.0/26']);
  });

  it('never hands out the gateway of a network defined ahead (sluice network create)', async () => {
    const shared = newNetworkRecord(net.parseCidr('10.120.0.0/16')!, 26, { name: 'shared', managed: true });
    await defineNetwork(registry, () => shared);
    const { poolId, data } = await ipam.requestPool({ pool: '10.120.0.0/16', options: {}, v6: false });
    expect(data['com.docker.network.gateway']).toBe('10.120.0.1/16');
    expect((await ipam.requestAddress({ poolId })).address).toBe('10.120.0.2/16');
  });

  describe('IPv6 pools', () => {
    const v6Pool = (subnet: string, options: Record<string, string> = {}) => ipam.requestPool({ pool: subnet, options, v6: true });

    it('gives an IPv6 --subnet the same pool on every host, canonical, with its first address as gateway and /122 blocks', async () => {
      const a = await v6Pool('FD00:0096:0:0::/64');
      const b = await ipamFor(registry, 'h2').requestPool({ pool: 'fd00:96::/64', options: {}, v6: true });
      expect(a).toEqual({ poolId: 'fd00:96::-64', pool: 'fd00:96::/64', data: { 'com.docker.network.gateway': 'fd00:96::1/64' } });
      expect(b.poolId).toBe(a.poolId);
      expect((await registry.getNetwork(a.poolId))?.record.blockSize).toBe(122);
    });

    it('takes block-size-v6 for IPv6 pools only, since Docker sends the same --ipam-opt to both pools', async () => {
      const options = { 'block-size': '28', 'block-size-v6': '120' };
      const v6 = await v6Pool('fd00:96::/64', options);
      const v4 = await ipam.requestPool({ pool: '10.96.0.0/16', options, v6: false });
      expect((await registry.getNetwork(v6.poolId))?.record.blockSize).toBe(120);
      expect((await registry.getNetwork(v4.poolId))?.record.blockSize).toBe(28);
      await expect(v6Pool('fd00:97::/64', { 'block-size-v6': '127' })).rejects.toThrow(
        new BadRequestError('--ipam-opt block-size-v6=127: expected a prefix length from 64 to 126, e.g. 122'),
      );
    });

    it('refuses --ipv6 without an IPv6 --subnet, and an IPv4 subnet for the IPv6 pool', async () => {
      await expect(ipam.requestPool({ options: {}, v6: true })).rejects.toThrow(/--ipv6 needs an IPv6 --subnet, such as --subnet fd00:96::\/64/);
      await expect(v6Pool('10.96.0.0/16')).rejects.toThrow(new BadRequestError('--subnet 10.96.0.0/16 is not an IPv6 CIDR such as fd00:96::/64'));
      await expect(ipam.requestPool({ pool: 'fd00:96::/64', options: {}, v6: false })).rejects.toThrow(/is not an IPv4 CIDR/);
      await expect(v6Pool('fd00:96::/127')).rejects.toThrow(/too small: use a \/126 or larger/);
    });

    it('refuses an IPv6 subnet overlapping another IPv6 network, never one of the other family', async () => {
      await v6Pool('fd00:96::/64');
      await ipam.requestPool({ pool: '0.0.0.0/1', options: {}, v6: false });
      await expect(v6Pool('fd00:96::/80')).rejects.toThrow(
        new ConflictError('subnet fd00:96::/80 overlaps sluice network fd00:96::/64: pick a subnet outside it'),
      );
      await expect(v6Pool('::/96')).resolves.toMatchObject({ pool: '::/96' });
    });

    it('hands out distinct addresses, skipping the subnet-router address and the gateway, and reuses a released one', async () => {
      const { poolId } = await v6Pool('fd00:96::/64');
      const first = await ipam.requestAddress({ poolId });
      const second = await ipam.requestAddress({ poolId });
      expect([first.address, second.address]).toEqual(['fd00:96::2/64', 'fd00:96::3/64']);
      await ipam.releaseAddress(poolId, 'fd00:96:0::2');
      expect((await ipam.requestAddress({ poolId })).address).toBe('fd00:96::2/64');
      await expect(ipam.releaseAddress(poolId, '10.96.0.2')).rejects.toThrow(new BadRequestError('ReleaseAddress: "10.96.0.2" is not an IPv6 address'));
    });

    it('never hands out one IPv6 address twice under 50 concurrent requests from each of three hosts', async () => {
      const { poolId } = await v6Pool('fd00:96::/64');
      const hosts = ['h1', 'h2', 'h3'].map((node) => ipamFor(new Registry(store), node));
      const results = await Promise.all(hosts.flatMap((h) => Array.from({ length: 50 }, () => h.requestAddress({ poolId }))));
      expect(new Set(results.map((r) => r.address)).size).toBe(150);
      const blocks = await registry.listBlocks(poolId);
      for (const { record } of await registry.listAddresses(poolId)) {
        if (record.kind !== 'endpoint') continue;
        const block = blocks.find((b) => net.contains(net.parseCidr(b.block)!, net.parseIp(record.address)!));
        expect(block?.node).toBe(record.node);
      }
    });

    it('gives --ip6 exactly, stored in canonical form, and refuses it when taken, outside the pool or of the other family', async () => {
      const poolId = await createdPool(ipam, 'fd00:96::/64');
      expect(await ipam.requestAddress({ poolId, address: 'FD00:96:0:0:0:0:0:77' })).toEqual({ address: 'fd00:96::77/64' });
      expect((await registry.listAddresses(poolId)).map((a) => a.record.address)).toContain('fd00:96::77');
      await expect(ipam.requestAddress({ poolId, address: 'fd00:96::77' })).rejects.toThrow(/already in use on node h1/);
      await expect(ipam.requestAddress({ poolId, address: 'fd00:97::5' })).rejects.toThrow(/outside the network's subnet/);
      await expect(ipam.requestAddress({ poolId, address: 'fd00:96::' })).rejects.toThrow(/is the network address of fd00:96::\/64/);
      await expect(ipam.requestAddress({ poolId, address: '10.96.0.5' })).rejects.toThrow(new BadRequestError('"10.96.0.5" is not an IPv6 address'));
    });

    it('fills a small IPv6 pool block by block, the last address included, then reports it full', async () => {
      const { poolId } = await v6Pool('fd00:99::/125', { 'block-size-v6': '126' });
      const got: string[] = [];
      // 8 addresses - the subnet-router address - gateway = 6 usable; IPv6 has no broadcast.
      for (let i = 0; i < 6; i++) got.push(ip((await ipam.requestAddress({ poolId })).address));
      expect(got).toContain('fd00:99::7');
      expect(new Set(got).size).toBe(6);
      await expect(ipam.requestAddress({ poolId })).rejects.toThrow(/network fd00:99::\/125 is full/);
    });
  });

  describe('--ip-range', () => {
    const ranged = (node: Ipam, subPool = '10.96.0.128/26') => node.requestPool({ pool: '10.96.0.0/24', subPool, options: {}, v6: false });

    it('hands out addresses of the range only, on every host, in blocks small enough to share', async () => {
      const h2 = ipamFor(registry, 'h2');
      const { poolId } = await ranged(ipam);
      await ranged(h2);
      expect((await registry.getNetwork(poolId))?.record).toMatchObject({ ipRange: '10.96.0.128/26', blockSize: 28 });
      const range = parseCidr('10.96.0.128/26')!;
      const given: string[] = [];
      for (const node of [ipam, h2, ipam, h2]) {
        for (let i = 0; i < 16; i++) given.push(ip((await node.requestAddress({ poolId })).address));
      }
      // Each host took two /28 blocks of the range: its 64 addresses, none outside.
      expect(new Set(given).size).toBe(64);
      expect(given.every((a) => range.base <= parseIp(a)! && parseIp(a)! < range.base + 64)).toBe(true);
      await expect(h2.requestAddress({ poolId })).rejects.toThrow(/10.96.0.0\/24 \(--ip-range 10.96.0.128\/26\) is full/);
      await expect(ipam.requestAddress({ poolId })).rejects.toBeInstanceOf(ExhaustedError);
      // Hosts claimed the range's blocks only: none of the rest of the subnet is held for nothing.
      expect((await registry.listBlocks(poolId)).map((b) => b.block).sort()).toEqual(['10.96.0.128/28', '10.96.0.144/28', '10.96.0.160/28', '10.96.0.176/28']);
    });

    it('keeps to a range smaller than a block', async () => {
      const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/24', subPool: '10.96.0.128/28', options: { 'block-size': '24' }, v6: false });
      const given = new Set<string>();
      for (let i = 0; i < 16; i++) given.add(ip((await ipam.requestAddress({ poolId })).address));
      expect([...given].map((a) => parseIp(a)! - parseIp('10.96.0.128')!).sort((a, b) => a - b)).toEqual([...Array(16).keys()]);
      await expect(ipam.requestAddress({ poolId })).rejects.toBeInstanceOf(ExhaustedError);
    });

    it('refuses another host\'s create with a different range, or without one', async () => {
      await ranged(ipam);
      await expect(ranged(ipamFor(registry, 'h2'), '10.96.0.0/26')).rejects.toThrow(
        new ConflictError('sluice network 10.96.0.0/24 already exists with --ip-range 10.96.0.128/26: create it on this host the same way'),
      );
      await expect(ipamFor(registry, 'h2').requestPool({ pool: '10.96.0.0/24', options: {}, v6: false })).rejects.toThrow(/with --ip-range/);
    });
  });

  it('hands out an address that another host reserved in this host\'s block meanwhile to nobody, and the next free one instead', async () => {
    const poolId = await createdPool(ipam, '10.96.0.0/16');
    expect(ip((await ipam.requestAddress({ poolId })).address)).toBe('10.96.0.2');
    // Another host's `docker network create --aux-address` of the same network, after h1 last listed its block.
    const h2 = ipamFor(registry, 'h2');
    await h2.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    await h2.requestAddress({ poolId, address: '10.96.0.3' });
    expect(ip((await ipam.requestAddress({ poolId })).address)).toBe('10.96.0.4');
    expect((await registry.listAddresses(poolId)).map((a) => `${a.record.address} ${a.record.kind}`)).toEqual([
      '10.96.0.1 gateway',
      '10.96.0.2 endpoint',
      '10.96.0.3 aux',
      '10.96.0.4 endpoint',
    ]);
  });

  describe('with the agent\'s view behind the store', () => {
    it('takes addresses from the block this host holds, not a new block, when the view does not know of it yet', async () => {
      const lagging = ipamFor(registry, 'h1', {}, new LaggingView());
      const poolId = await createdPool(lagging, '10.96.0.0/16');
      const first = await lagging.requestAddress({ poolId });
      const second = await lagging.requestAddress({ poolId });
      expect({ addresses: [ip(first.address), ip(second.address)], blocks: (await registry.listBlocks(poolId)).map((b) => b.block) }).toEqual({
        addresses: ['10.96.0.2', '10.96.0.3'],
        blocks: ['10.96.0.0/26'],
      });
    });

    it('keeps an --aux-address that a create settled a moment ago, when the view still has the network without it', async () => {
      const view = new LaggingView();
      const lagging = ipamFor(registry, 'h1', {}, view);
      const { poolId } = await lagging.requestPool({ pool: '10.96.0.0/29', options: {}, v6: false });
      view.networks.set(poolId, (await registry.getNetwork(poolId))!.record);
      await lagging.requestAddress({ poolId, address: '10.96.0.2' });
      await lagging.settleNetwork(poolId, { internal: false, auxAddresses: { router: '10.96.0.2' } }, () => undefined);
      await lagging.releaseAddress(poolId, '10.96.0.2');
      expect((await registry.listAddresses(poolId)).map((a) => a.record.kind).sort()).toEqual(['aux', 'gateway']);
    });
  });

  describe('--aux-address', () => {
    /** `docker network create --aux-address` on one host: RequestPool, RequestAddress per aux address, CreateNetwork. */
    async function createWithAux(node: Ipam, subnet: string, aux: Record<string, string>): Promise<string> {
      const { poolId } = await node.requestPool({ pool: subnet, options: {}, v6: false });
      for (const address of Object.values(aux)) expect(await node.requestAddress({ poolId, address })).toEqual({ address: `${address}/29` });
      await node.settleNetwork(poolId, { internal: false, auxAddresses: aux }, () => undefined);
      return poolId;
    }

    it('reserves the address for the whole cluster: every host\'s create succeeds and none hands it out', async () => {
      const h2 = ipamFor(registry, 'h2');
      const aux = { router: '10.96.0.2', printer: '10.96.0.5' };
      const poolId = await createWithAux(ipam, '10.96.0.0/29', aux);
      await createWithAux(h2, '10.96.0.0/29', aux);
      // A /29 has 6 host addresses: the gateway, 2 aux, so 3 for containers.
      const given = [await ipam.requestAddress({ poolId }), await ipam.requestAddress({ poolId }), await ipam.requestAddress({ poolId })];
      expect(given.map((g) => ip(g.address)).sort()).toEqual(['10.96.0.3', '10.96.0.4', '10.96.0.6']);
      await expect(h2.requestAddress({ poolId })).rejects.toBeInstanceOf(ExhaustedError);
      await expect(ipam.requestAddress({ poolId, address: '10.96.0.2' })).rejects.toThrow(/reserved with --aux-address/);
    });

    it('keeps the reservation while a host still has the network, frees it with the pool', async () => {
      const poolId = await createWithAux(ipam, '10.96.0.0/29', { router: '10.96.0.2' });
      await ipam.releaseAddress(poolId, '10.96.0.2'); // one host's docker network rm
      expect((await registry.listAddresses(poolId)).map((a) => a.record.kind).sort()).toEqual(['aux', 'gateway']);
      await ipam.releasePool(poolId);
      expect(await registry.listAddresses(poolId)).toEqual([]);
      expect(await registry.getNetwork(poolId)).toBeUndefined();
    });

    it('frees the reservation of a create that failed before CreateNetwork settled it', async () => {
      const poolId = await createWithAux(ipam, '10.96.0.0/29', { router: '10.96.0.2' });
      await registry.putDockerNet('h1', 'a'.repeat(64), poolId); // h1 keeps the network
      const h2 = ipamFor(registry, 'h2');
      await h2.requestPool({ pool: '10.96.0.0/29', options: {}, v6: false });
      await h2.requestAddress({ poolId, address: '10.96.0.3' });
      // CreateNetwork refuses the different --aux-address; Docker rolls back.
      await expect(h2.settleNetwork(poolId, { internal: false, auxAddresses: { other: '10.96.0.3' } }, () => 'without that')).rejects.toThrow(
        new ConflictError('sluice network 10.96.0.0/29 was created without that: create it on this host the same way'),
      );
      await h2.releaseAddress(poolId, '10.96.0.3');
      await h2.releasePool(poolId);
      expect((await registry.listAddresses(poolId)).map((a) => a.record.address).sort()).toEqual(['10.96.0.1', '10.96.0.2']);
    });

    it('refuses an aux address a container holds', async () => {
      const poolId = await createdPool(ipam, '10.96.0.0/29');
      const { address } = await ipam.requestAddress({ poolId });
      const h2 = ipamFor(registry, 'h2');
      await h2.requestPool({ pool: '10.96.0.0/29', options: {}, v6: false });
      await expect(h2.requestAddress({ poolId, address: ip(address) })).rejects.toThrow(
        new ConflictError(`--aux-address ${ip(address)} is already in use on node h1: choose a free address`),
      );
    });
  });
});
