import type { BlockRecord, NodeRecord } from '../../../src/model';
import { blockRoutes, type PeerMode } from '../../../src/routing/routes';

const node = (name: string, fields: Partial<NodeRecord>): NodeRecord => ({
  name,
  ip: '',
  backend: 'auto',
  version: 'test',
  lastSeen: '2026-11-27T12:00:00.000Z',
  ...fields,
});
const v4 = (block: string, owner: string): BlockRecord => ({ network: '10.96.0.0-16', block, node: owner });
const v6 = (block: string, owner: string): BlockRecord => ({ network: 'fd00:96::-64', block, node: owner });
const macs = { h1: '0e:00:00:00:00:01', h2: '0e:00:00:00:00:02', h3: '0e:00:00:00:00:03' };

/** h1 is this host; h2 shares its link, h3 does not. */
function routesOf(nodes: NodeRecord[], blocks: BlockRecord[], modes: Record<string, PeerMode> = { h2: 'host-gw', h3: 'vxlan' }) {
  return blockRoutes('h1', blocks, new Map(nodes.map((n) => [n.name, n])), (peer) => modes[peer.name]!, 1450);
}

describe('blockRoutes', () => {
  const h1 = node('h1', { ip: '192.168.77.1', ip6: 'fd00:250::1', vtepMac: macs.h1 });
  const h2 = node('h2', { ip: '192.168.77.2', ip6: 'fd00:250::2', vtepMac: macs.h2 });
  const h3 = node('h3', { ip: '10.0.3.3', ip6: 'fd00:251::3', vtepMac: macs.h3 });
  const blocks = [v4('10.96.0.0/26', 'h1'), v4('10.96.0.64/26', 'h2'), v4('10.96.0.128/26', 'h3'), v6('fd00:96::/122', 'h1'), v6('fd00:96::40/122', 'h2'), v6('fd00:96::80/122', 'h3')];

  it('chooses alike for both families: own blocks blackholed, a peer on the link host-gw via its address of the family, others VXLAN over IPv4', () => {
    expect(routesOf([h1, h2, h3], blocks)).toEqual([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'vxlan', block: '10.96.0.128/26', nodeIp: '10.0.3.3', vtepMac: macs.h3, mtu: 1450 },
      { kind: 'host-gw', block: '10.96.0.64/26', via: '192.168.77.2' },
      { kind: 'blackhole', block: 'fd00:96::/122' },
      { kind: 'host-gw', block: 'fd00:96::40/122', via: 'fd00:250::2' },
      { kind: 'vxlan', block: 'fd00:96::80/122', nodeIp: '10.0.3.3', vtepMac: macs.h3, mtu: 1450 },
    ]);
  });

  it('sends an IPv6 block of a peer on the link without an IPv6 address through the tunnel: Linux cannot route IPv6 via IPv4', () => {
    const routes = routesOf([h1, { ...h2, ip6: undefined }, h3], blocks);
    expect(routes).toContainEqual({ kind: 'host-gw', block: '10.96.0.64/26', via: '192.168.77.2' });
    expect(routes).toContainEqual({ kind: 'vxlan', block: 'fd00:96::40/122', nodeIp: '192.168.77.2', vtepMac: macs.h2, mtu: 1450 });
  });

  it('gives such a block no route when either end has no VXLAN device (host-gw backend)', () => {
    const noTunnelHere = routesOf([{ ...h1, vtepMac: undefined }, { ...h2, ip6: undefined }], blocks, { h2: 'host-gw' });
    expect(noTunnelHere.map((r) => r.block)).toEqual(['10.96.0.0/26', '10.96.0.64/26', 'fd00:96::/122']);
    const noTunnelThere = routesOf([h1, { ...h2, ip6: undefined, vtepMac: undefined }], blocks, { h2: 'host-gw' });
    expect(noTunnelThere.map((r) => r.block)).toEqual(['10.96.0.0/26', '10.96.0.64/26', 'fd00:96::/122']);
  });

  it('routes a VXLAN peer\'s IPv6 blocks through the tunnel even when it has an IPv6 address: the mode decides, not the address', () => {
    expect(routesOf([h1, h2, h3], blocks, { h2: 'vxlan', h3: 'vxlan' }).filter((r) => r.kind === 'host-gw')).toEqual([]);
  });
});
