import { ClusterView } from '../../../src/agent/view';
import type { NodeRecord } from '../../../src/model';
import { keys } from '../../../src/store/keys';
import type { WatchEvent } from '../../../src/store/store';

const NODE: NodeRecord = { name: 'h2', ip: '192.0.2.2', backend: 'vxlan', vtepMac: '0e:00:00:00:00:02', version: '0.1.0', lastSeen: '2026-11-27T12:00:00.000Z' };
const BLOCK = { network: '10.96.0.0-16', block: '10.96.1.0/26', node: 'h2' };
const ADDRESS = { network: '10.96.0.0-16', address: '10.96.1.2', node: 'h2', kind: 'endpoint' };

let revision = 0;
function put(key: string, value: unknown): WatchEvent {
  return { type: 'put', kv: { key, value: typeof value === 'string' ? value : JSON.stringify(value), modRevision: ++revision } };
}
function del(key: string): WatchEvent {
  return { type: 'delete', key, modRevision: ++revision };
}

describe('ClusterView.apply: whether the desired state may have changed', () => {
  let view: ClusterView;
  afterEach(() => jest.restoreAllMocks());
  beforeEach(() => {
    view = new ClusterView();
    view.apply([put(keys.node('h2'), NODE), put(keys.aliveNode('h2'), 'lease-1'), put(keys.block(BLOCK.network, BLOCK.block), BLOCK)]);
  });

  it('says no to keys it ignores: address claims, the pool guard', () => {
    expect(view.apply([put(keys.address('10.96.0.0-16', '10.96.1.0/26', '10.96.1.2'), ADDRESS)])).toBe(false);
    expect(view.apply([del(keys.address('10.96.0.0-16', '10.96.1.0/26', '10.96.1.2'))])).toBe(false);
    expect(view.apply([put(keys.poolGuard, '10.96.0.0-16')])).toBe(false);
  });

  it('keeps IPv6 pools apart from the networks, and their blocks with the others', () => {
    const pool = { key: 'fd00:96::-64', subnet: 'fd00:96::/64', blockSize: 122, gateway: 'fd00:96::1' };
    const block = { network: pool.key, block: 'fd00:96::40/122', node: 'h2' };
    expect(view.apply([put(keys.network(pool.key), pool), put(keys.block(pool.key, block.block), block)])).toBe(true);
    expect([view.networks.size, view.ipv6Pools.get(pool.key), view.blocks.size]).toEqual([0, pool, 2]);
    expect(view.apply([del(keys.network(pool.key))])).toBe(true);
    expect(view.ipv6Pools.size).toBe(0);
  });

  it('says no to a liveness renewal and to a node record whose only change is lastSeen', () => {
    expect(view.apply([put(keys.aliveNode('h2'), 'renewed at 12:01')])).toBe(false);
    expect(view.apply([put(keys.node('h2'), { ...NODE, lastSeen: '2026-11-27T12:01:00.000Z' })])).toBe(false);
    expect(view.nodes.get('h2')?.lastSeen).toBe('2026-11-27T12:01:00.000Z');
  });

  it('says no to a value put again unchanged, and to garbage replacing garbage', () => {
    expect(view.apply([put(keys.block(BLOCK.network, BLOCK.block), BLOCK)])).toBe(false);
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(view.apply([put(keys.policy('broken'), 'not json{')])).toBe(false);
    expect(view.apply([put(keys.policy('broken'), 'still not json{')])).toBe(false);
  });

  it('says yes to what routes and the firewall depend on', () => {
    expect(view.apply([put(keys.node('h2'), { ...NODE, ip: '192.0.2.22' })])).toBe(true);
    expect(view.apply([put(keys.block(BLOCK.network, BLOCK.block), { ...BLOCK, node: 'h3' })])).toBe(true);
    expect(view.apply([del(keys.aliveNode('h2'))])).toBe(true);
    expect(view.apply([put(keys.aliveNode('h2'), 'lease-2')])).toBe(true);
    expect(view.apply([put(keys.poolGuard, 'x'), del(keys.block(BLOCK.network, BLOCK.block))])).toBe(true);
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    // A valid record turned invalid is dropped: that is a change too.
    expect(view.apply([put(keys.node('h2'), 'not json{')])).toBe(true);
  });
});
