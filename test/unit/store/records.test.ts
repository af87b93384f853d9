import { ClusterView } from '../../../src/agent/view';
import { InvalidRecordError } from '../../../src/errors';
import { Ipam } from '../../../src/ipam/ipam-service';
import { parseCidr } from '../../../src/net/ip';
import { ROOT } from '../../../src/store/keys';
import { MemoryStore } from '../../../src/store/memory-store';
import { UNKNOWN_HOLDER, readRecord } from '../../../src/store/records';
import { Registry } from '../../../src/store/registry';

const read = (key: string, value: string) => readRecord({ key: `${ROOT}${key}`, value, modRevision: 1 });
const reason = (key: string, value: string): string => {
  try {
    read(key, value);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRecordError);
    return (err as InvalidRecordError).reason;
  }
  throw new Error(`${key} was accepted`);
};

const ENDPOINT = { id: 'e'.repeat(64), network: '10.96.0.0-16', node: 'h1', address: '10.96.0.2', hostIfname: 'slveeeeeeeeeee', labels: { role: 'web' }, ports: [] };

describe('store records', () => {
  it('reads a node\'s WireGuard key, port and implementation, and refuses a key that is not one', () => {
    const node = { name: 'h1', ip: '192.0.2.1', backend: 'auto', version: '0.1.0', lastSeen: '2026-01-01T00:00:00Z' };
    const wireguard = { publicKey: 'lPO0oNQJuqTM25hc/tVOXCPe/EpfdJPC6Jw0N/TePnA=', port: 51820, implementation: 'kernel' };
    expect(read('nodes/h1', JSON.stringify({ ...node, wireguard }))).toEqual({ kind: 'node', record: { ...node, wireguard } });
    expect(reason('nodes/h1', JSON.stringify({ ...node, wireguard: { ...wireguard, publicKey: 'abc' } }))).toBe(
      'wireguard.publicKey: expected a WireGuard public key, found "abc"',
    );
    expect(reason('nodes/h1', JSON.stringify({ ...node, wireguard: { ...wireguard, implementation: 'boringtun' } }))).toBe(
      'wireguard.implementation: expected one of kernel, wireguard-go, found "boringtun"',
    );
  });

  it('reads what Sluice writes, and names the key and the problem of anything else', () => {
    expect(read(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify(ENDPOINT))).toEqual({ kind: 'endpoint', record: ENDPOINT });
    expect(reason('networks/10.96.0.0-16', 'not json{')).toBe('value is not JSON: "not json{"');
    expect(reason('networks/10.96.0.0-16', '[]')).toBe('value: expected an object, found a list');
    expect(reason('networks/10.96.0.0-16', JSON.stringify({ key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.97.0.1' }))).toBe(
      'gateway: expected an IPv4 address in 10.96.0.0/16, found "10.97.0.1"',
    );
    expect(reason('nodes/h1', JSON.stringify({ name: 'h2', ip: '192.0.2.1', backend: 'vxlan', version: '1', lastSeen: '2026-01-01T00:00:00Z' }))).toBe(
      'name: expected "h1" (as the key says), found "h2"',
    );
    expect(reason('blocks/10.96.0.0-16/0.0.0.0-0', '{}')).toBe('key: expected a block of 10.96.0.0/16, found "0.0.0.0/0"');
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...ENDPOINT, address: '999.1.1.1' }))).toMatch(/^address: expected an IPv4 address in 10\.96\.0\.0\/16/);
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...ENDPOINT, labels: { role: 5 } }))).toBe('labels.role: expected a string, found 5');
    const named = { ...ENDPOINT, containerName: 'web1', aliases: ['web', 'frontend'] };
    expect(read(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify(named))).toEqual({ kind: 'endpoint', record: named });
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...ENDPOINT, aliases: ['web', 3] }))).toBe('aliases[1]: expected a string, found 3');
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...ENDPOINT, ports: [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080, hostIp: '0.0.0.0 -j ACCEPT' }] }))).toBe(
      'ports[0].hostIp: expected an IP address, found "0.0.0.0 -j ACCEPT"',
    );
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...ENDPOINT, containerName: 7, hostIfname: 'x'.repeat(1_000_000) }))).toBe(
      `hostIfname: expected a sluice veth name (slv + 11 hex digits), found "${'x'.repeat(39)}…`,
    );
    expect(reason('dockernets/h1/abc', '10.96.0.0/16')).toBe('value: expected a network key such as "10.96.0.0-16", found "10.96.0.0/16"');
    expect(reason('policies/web', 'kind: NetworkPolicy\nname: other\nselector: all()\ningress: []\n')).toBe('name: expected "web" (as the key says), found "other"');
    expect(read('something-newer/x', 'anything')).toEqual({ kind: 'unknown' });
  });

  it('reads a network\'s --ip-range and create settings, refusing ones outside its subnet or out of range', () => {
    const net = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 28, gateway: '10.96.0.1' };
    const full = { ...net, ipRange: '10.96.1.0/24', settings: { internal: true, mtu: 1400, auxAddresses: { router: '10.96.0.2' } } };
    expect(read('networks/10.96.0.0-16', JSON.stringify(full))).toEqual({ kind: 'network', record: full });
    const bad = (extra: object) => reason('networks/10.96.0.0-16', JSON.stringify({ ...net, ...extra }));
    expect(bad({ ipRange: '10.97.1.0/24' })).toBe('ipRange: expected a block of 10.96.0.0/16, found "10.97.1.0/24"');
    expect(bad({ settings: { ...full.settings, mtu: 10 } })).toBe('settings.mtu: expected an integer from 68 to 65535, found 10');
    expect(bad({ settings: { ...full.settings, internal: 'yes' } })).toBe('settings.internal: expected true or false, found "yes"');
    expect(bad({ settings: { ...full.settings, auxAddresses: { router: '10.97.0.2' } } })).toBe(
      'settings.auxAddresses.router: expected an IPv4 address in 10.96.0.0/16, found "10.97.0.2"',
    );
  });

  it('reads IPv6 pools, blocks and addresses in canonical form only, and a dual-stack endpoint, network and node', () => {
    const pool = { key: 'fd00:96::-64', subnet: 'fd00:96::/64', blockSize: 122, gateway: 'fd00:96::1' };
    expect(read('networks/fd00:96::-64', JSON.stringify(pool))).toEqual({ kind: 'network', record: pool });
    expect(reason('networks/fd00:96:0::-64', JSON.stringify(pool))).toBe('key: expected a network key such as "10.96.0.0-16", found "fd00:96:0::-64"');
    expect(reason('networks/fd00:96::-64', JSON.stringify({ ...pool, gateway: 'FD00:96::1' }))).toBe(
      'gateway: expected an IPv6 address in fd00:96::/64, found "FD00:96::1"',
    );
    expect(reason('networks/fd00:96::-64', JSON.stringify({ ...pool, blockSize: 130 }))).toBe('blockSize: expected an integer from 64 to 128, found 130');
    const block = { network: 'fd00:96::-64', block: 'fd00:96::40/122', node: 'h1' };
    expect(read('blocks/fd00:96::-64/fd00:96::40-122', JSON.stringify(block))).toEqual({ kind: 'block', record: block });
    const claim = { network: 'fd00:96::-64', address: 'fd00:96::41', node: 'h1', kind: 'endpoint' };
    expect(read('addresses/fd00:96::-64/fd00:96::40-122/fd00:96::41', JSON.stringify(claim))).toEqual({ kind: 'address', record: claim });
    expect(reason('addresses/fd00:96::-64/fd00:96::40-122/fd00:96::81', JSON.stringify(claim))).toBe(
      'key: expected an IPv6 address in fd00:96::40/122, found "fd00:96::81"',
    );

    const dual = { ...ENDPOINT, addressV6: 'fd00:96::41' };
    expect(read(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify(dual))).toEqual({ kind: 'endpoint', record: dual });
    expect(reason(`endpoints/h1/${'e'.repeat(64)}`, JSON.stringify({ ...dual, addressV6: '10.96.0.3' }))).toBe(
      'addressV6: expected an IPv6 address, found "10.96.0.3"',
    );
    const net = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1' };
    const settings = { internal: false, auxAddresses: {}, ipv6Subnet: 'fd00:96::/64' };
    expect(read('networks/10.96.0.0-16', JSON.stringify({ ...net, settings }))).toEqual({ kind: 'network', record: { ...net, settings } });
    expect(reason('networks/10.96.0.0-16', JSON.stringify({ ...net, settings: { ...settings, ipv6Subnet: 'fd00:96::1/64' } }))).toBe(
      'settings.ipv6Subnet: expected an IPv6 CIDR, found "fd00:96::1/64"',
    );
    const node = { name: 'h1', ip: '192.0.2.1', ip6: '2001:db8::1', backend: 'host-gw', version: '0.1.0', lastSeen: '2026-01-01T00:00:00Z' };
    expect(read('nodes/h1', JSON.stringify(node))).toEqual({ kind: 'node', record: node });
    expect(reason('nodes/h1', JSON.stringify({ ...node, ip: '2001:db8::1' }))).toBe('ip: expected an IPv4 address, found "2001:db8::1"');
  });

  it('has the Registry skip invalid records in lists, refuse them in gets, and name them', async () => {
    const store = new MemoryStore();
    const registry = new Registry(store);
    await registry.putEndpoint(ENDPOINT);
    await store.put(`${ROOT}endpoints/h1/${'f'.repeat(64)}`, '{"id": 1}');
    await store.put(`${ROOT}networks/10.97.0.0-16`, 'not json{');
    expect(await registry.listEndpoints()).toEqual([ENDPOINT]);
    expect(await registry.listNetworks()).toEqual([]);
    await expect(registry.getNetwork('10.97.0.0-16')).rejects.toThrow(
      'invalid record in the store at /sluice/v1/networks/10.97.0.0-16: value is not JSON: "not json{" (rewrite or delete the key)',
    );
    expect(await registry.invalidRecords()).toEqual([
      { key: `${ROOT}endpoints/h1/${'f'.repeat(64)}`, reason: 'network: expected a string, found nothing' },
      { key: `${ROOT}networks/10.97.0.0-16`, reason: 'value is not JSON: "not json{"' },
    ]);
    await store.close();
  });

  it('keeps a corrupt address or block claim taken, so IPAM never hands it out twice', async () => {
    const store = new MemoryStore();
    const registry = new Registry(store);
    const ipam = new Ipam(registry, { node: 'h1', defaultSupernet: parseCidr('10.96.0.0/12')!, defaultSubnetPrefix: 16, defaultBlockSize: 30 });
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    // The gateway's /30 holds 10.96.0.1 (gateway) and .2; .2's record is garbage.
    await store.put(`${ROOT}addresses/${poolId}/10.96.0.0-30/10.96.0.2`, 'not json{');
    // The next /30 is claimed by a record that lost its holder.
    await store.put(`${ROOT}blocks/${poolId}/10.96.0.4-30`, '{"network": 5}');
    expect((await registry.listAddresses(poolId)).map((a) => [a.record.address, a.record.node])).toEqual([
      ['10.96.0.1', '*'],
      ['10.96.0.2', UNKNOWN_HOLDER],
    ]);
    const got = [];
    for (let i = 0; i < 2; i++) got.push((await ipam.requestAddress({ poolId })).address);
    // Not the corrupt .2, and nothing of the corrupt block 10.96.0.4/30: .3, then the next block.
    expect(got).toEqual(['10.96.0.3/16', '10.96.0.8/16']);
    await store.close();
  });
});

describe('ClusterView: invalid records', () => {
  it('logs an invalid key once, not again on a relist, and forgets it once the key is fixed', () => {
    const logged: string[] = [];
    const spy = jest.spyOn(console, 'error').mockImplementation((line: string) => void logged.push(line));
    try {
      const view = new ClusterView();
      const bad = { key: `${ROOT}networks/10.96.0.0-16`, value: 'not json{', modRevision: 1 };
      view.reset([bad]);
      view.reset([bad]);
      view.apply([{ type: 'put', kv: bad }]);
      expect(logged).toEqual(['sluice agent: ignoring invalid record in the store at /sluice/v1/networks/10.96.0.0-16: value is not JSON: "not json{" (rewrite or delete the key)']);
      expect([...view.invalid.keys()]).toEqual([bad.key]);
      const good = JSON.stringify({ key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1' });
      view.apply([{ type: 'put', kv: { ...bad, value: good } }]);
      expect(view.invalid.size).toBe(0);
      expect(view.networks.get('10.96.0.0-16')?.gateway).toBe('10.96.0.1');
      // Garbage replacing a valid value drops the old value too: nothing acts on a record it cannot read.
      view.apply([{ type: 'put', kv: bad }]);
      expect(view.networks.size).toBe(0);
      expect(logged).toHaveLength(2);
    } finally {
      spy.mockRestore();
    }
  });
});
