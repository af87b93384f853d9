import { DataplaneError } from '../../../src/errors';
import { involvesVxlan, linkLocalOf, parseJson, planRoutes, type KernelRoute } from '../../../src/dataplane/linux/routes';

// As printed by `ip -j route show proto 252` (iproute2 6.1), with an endpoint /32 among the block routes.
const shown = `[{"dst":"10.96.0.5","dev":"slv0123456789a","scope":"link","flags":["linkdown"]},
{"type":"blackhole","dst":"10.96.1.0/26","flags":[]},
{"dst":"10.96.2.0/26","gateway":"192.168.77.2","dev":"eth0","flags":[]},
{"dst":"10.96.3.0/26","gateway":"192.168.77.3","dev":"sluice.vxlan","flags":["onlink"],"metrics":[{"mtu":1450}]}]`;
const current = parseJson<KernelRoute>(shown, 'ip route');
const mac3 = '0e:00:00:00:00:03';
const nothing = { neighbours: [], fdb: [] };
const asIs = { neighbours: [{ dst: '192.168.77.3', lladdr: mac3 }], fdb: [{ mac: mac3, dst: '192.168.77.3' }] };
const desiredAsIs = [
  { kind: 'blackhole' as const, block: '10.96.1.0/26' },
  { kind: 'host-gw' as const, block: '10.96.2.0/26', via: '192.168.77.2' },
  { kind: 'vxlan' as const, block: '10.96.3.0/26', nodeIp: '192.168.77.3', vtepMac: mac3.toUpperCase(), mtu: 1450 },
];

describe('planRoutes', () => {
  it('writes nothing when the kernel already matches', () => {
    expect(planRoutes({ routes: current, ...asIs }, desiredAsIs)).toEqual({ bridge: [], ip: [] });
  });

  it('leaves endpoint /32 routes alone even when no block routes are wanted', () => {
    const plan = planRoutes({ routes: current, ...asIs }, []);
    expect(plan.ip).toEqual([
      'route del 10.96.1.0/26 proto 252',
      'route del 10.96.2.0/26 proto 252',
      'route del 10.96.3.0/26 proto 252',
      'neigh del 192.168.77.3 dev sluice.vxlan',
    ]);
    expect(plan.bridge).toEqual([`fdb del ${mac3} dev sluice.vxlan dst 192.168.77.3 self`]);
  });

  it('replaces a route whose kind or next hop changed, and adds new ones', () => {
    const plan = planRoutes({ routes: current, ...asIs }, [
      { kind: 'host-gw', block: '10.96.1.0/26', via: '192.168.77.9' },
      { kind: 'blackhole', block: '10.96.2.0/26' },
      { kind: 'vxlan', block: '10.96.3.0/26', nodeIp: '192.168.77.3', vtepMac: mac3, mtu: 1450 },
      { kind: 'host-gw', block: '10.96.4.5/26', via: '192.168.77.4' },
    ]);
    expect(plan.ip).toEqual([
      'route replace 10.96.1.0/26 via 192.168.77.9 proto 252',
      'route replace blackhole 10.96.2.0/26 proto 252',
      'route replace 10.96.4.0/26 via 192.168.77.4 proto 252',
    ]);
    expect(plan.bridge).toEqual([]);
  });

  it('programs one neighbour and FDB entry per VXLAN peer, before its routes', () => {
    const mac = '0e:aa:bb:cc:dd:ee';
    const plan = planRoutes({ routes: [], ...nothing }, [
      { kind: 'vxlan', block: '10.96.5.0/26', nodeIp: '192.168.77.5', vtepMac: mac, mtu: 1450 },
      { kind: 'vxlan', block: '10.96.6.0/26', nodeIp: '192.168.77.5', vtepMac: mac, mtu: 1450 },
    ]);
    expect(plan.ip).toEqual([
      `neigh replace 192.168.77.5 lladdr ${mac} dev sluice.vxlan nud permanent`,
      'route replace 10.96.5.0/26 via 192.168.77.5 dev sluice.vxlan onlink mtu 1450 proto 252',
      'route replace 10.96.6.0/26 via 192.168.77.5 dev sluice.vxlan onlink mtu 1450 proto 252',
    ]);
    expect(plan.bridge).toEqual([`fdb replace ${mac} dev sluice.vxlan dst 192.168.77.5 self permanent`]);
  });

  it('moves a peer to its new VTEP MAC: stale FDB entry out first', () => {
    const fresh = '0e:00:00:00:00:33';
    const plan = planRoutes({ routes: current, ...asIs }, [{ kind: 'vxlan', block: '10.96.3.0/26', nodeIp: '192.168.77.3', vtepMac: fresh, mtu: 1450 }]);
    expect(plan.bridge).toEqual([
      `fdb del ${mac3} dev sluice.vxlan dst 192.168.77.3 self`,
      `fdb replace ${fresh} dev sluice.vxlan dst 192.168.77.3 self permanent`,
    ]);
    expect(plan.ip[0]).toBe(`neigh replace 192.168.77.3 lladdr ${fresh} dev sluice.vxlan nud permanent`);
  });

  it('treats a VXLAN route without onlink or on another device as different', () => {
    const routes: KernelRoute[] = [{ dst: '10.96.3.0/26', gateway: '192.168.77.3', dev: 'eth0', flags: [] }];
    expect(planRoutes({ routes, ...asIs }, [desiredAsIs[2]!]).ip).toEqual([
      'route replace 10.96.3.0/26 via 192.168.77.3 dev sluice.vxlan onlink mtu 1450 proto 252',
    ]);
  });

  it('gives a VXLAN route the tunnel MTU when it has none or another', () => {
    const route = { dst: '10.96.3.0/26', gateway: '192.168.77.3', dev: 'sluice.vxlan', flags: ['onlink'] };
    for (const routes of [[route], [{ ...route, metrics: [{ mtu: 1500 }] }]]) {
      expect(planRoutes({ routes, ...asIs }, [desiredAsIs[2]!]).ip).toEqual([
        'route replace 10.96.3.0/26 via 192.168.77.3 dev sluice.vxlan onlink mtu 1450 proto 252',
      ]);
    }
  });

  it('ignores FDB entries without a remote (the device\'s own)', () => {
    const plan = planRoutes({ routes: [], neighbours: [], fdb: [{ mac: '0e:11:11:11:11:11' }] }, []);
    expect(plan.bridge).toEqual([]);
  });

  it('rejects a block that is not a CIDR', () => {
    expect(() => planRoutes({ routes: [], ...nothing }, [{ kind: 'blackhole', block: '10.96.0.0' }])).toThrow(DataplaneError);
  });
});

describe('planRoutes for IPv6 blocks', () => {
  // The VTEP MAC 0e:00:00:00:00:03 as an EUI-64 link-local address: the universal/local bit flipped, ff:fe in the middle.
  const nextHop3 = 'fe80::c00:ff:fe00:3';
  // As printed by `ip -j route show table all proto 252` (iproute2 6.1): no table for main, blackholes on lo.
  const shown6 = parseJson<KernelRoute>(
    `[{"dst":"fd00:96::5","dev":"slv0123456789a","metric":1024,"flags":[],"pref":"medium"},
{"type":"blackhole","dst":"fd00:96::/122","dev":"lo","metric":1024,"flags":[],"pref":"medium"},
{"dst":"fd00:96::40/122","gateway":"fd00:250::2","dev":"eth0","metric":1024,"flags":[],"pref":"medium"},
{"dst":"fd00:96::80/122","gateway":"${nextHop3}","dev":"sluice.vxlan","metric":1024,"flags":[],"metrics":[{"mtu":1450}],"pref":"medium"}]`,
    'ip route',
  );
  const asIs6 = { neighbours: [{ dst: nextHop3, lladdr: mac3 }], fdb: [{ mac: mac3, dst: '192.168.77.3' }] };
  const desired6 = [
    { kind: 'blackhole' as const, block: 'fd00:96::/122' },
    { kind: 'host-gw' as const, block: 'fd00:96::40/122', via: 'fd00:250::2' },
    { kind: 'vxlan' as const, block: 'fd00:96::80/122', nodeIp: '192.168.77.3', vtepMac: mac3, mtu: 1450 },
  ];

  it('derives the VTEP link-local next hop from its MAC as the kernel spells it', () => {
    expect(linkLocalOf(mac3)).toBe(nextHop3);
    expect(linkLocalOf('02:AB:CD:EF:01:23')).toBe('fe80::ab:cdff:feef:123');
    expect(() => linkLocalOf('0e:00:00:00:03')).toThrow(DataplaneError);
  });

  it('writes nothing when the kernel already matches, whatever spelling the blocks and next hops come in', () => {
    const spelled = [{ ...desired6[0]!, block: 'FD00:0096::0/122' }, { ...desired6[1]!, via: 'fd00:250:0::2' }, desired6[2]!];
    expect(planRoutes({ routes: shown6, ...asIs6 }, spelled)).toEqual({ bridge: [], ip: [] });
  });

  it('routes an IPv6 block through VXLAN via the link-local next hop, one neighbour per family, one FDB entry per peer', () => {
    const mac = '0e:aa:bb:cc:dd:ee';
    const plan = planRoutes({ routes: [], ...nothing }, [
      { kind: 'vxlan', block: '10.96.5.0/26', nodeIp: '192.168.77.5', vtepMac: mac, mtu: 1450 },
      { kind: 'vxlan', block: 'fd00:96::100/122', nodeIp: '192.168.77.5', vtepMac: mac, mtu: 1450 },
      { kind: 'vxlan', block: 'fd00:96::140/122', nodeIp: '192.168.77.5', vtepMac: mac, mtu: 1450 },
    ]);
    expect(plan.ip).toEqual([
      `neigh replace 192.168.77.5 lladdr ${mac} dev sluice.vxlan nud permanent`,
      `neigh replace fe80::caa:bbff:fecc:ddee lladdr ${mac} dev sluice.vxlan nud permanent`,
      'route replace 10.96.5.0/26 via 192.168.77.5 dev sluice.vxlan onlink mtu 1450 proto 252',
      'route replace fd00:96::100/122 via fe80::caa:bbff:fecc:ddee dev sluice.vxlan mtu 1450 proto 252',
      'route replace fd00:96::140/122 via fe80::caa:bbff:fecc:ddee dev sluice.vxlan mtu 1450 proto 252',
    ]);
    expect(plan.bridge).toEqual([`fdb replace ${mac} dev sluice.vxlan dst 192.168.77.5 self permanent`]);
  });

  it('removes stale IPv6 routes and the IPv6 neighbour of a peer reached over IPv4 only now, keeping the shared FDB entry', () => {
    const plan = planRoutes({ routes: [...current, ...shown6], neighbours: [...asIs.neighbours, ...asIs6.neighbours], fdb: asIs.fdb }, desiredAsIs);
    expect(plan.ip).toEqual([
      'route del fd00:96::/122 proto 252',
      'route del fd00:96::40/122 proto 252',
      'route del fd00:96::80/122 proto 252',
      `neigh del ${nextHop3} dev sluice.vxlan`,
    ]);
    expect(plan.bridge).toEqual([]);
  });

  it('refuses an IPv6 block via an IPv4 next hop, and the reverse, before writing anything', () => {
    expect(() => planRoutes({ routes: [], ...nothing }, [{ kind: 'host-gw', block: 'fd00:96::/122', via: '192.168.77.2' }])).toThrow(
      'next hop of fd00:96::/122 "192.168.77.2" is not an IPv6 address',
    );
    expect(() => planRoutes({ routes: [], ...nothing }, [{ kind: 'host-gw', block: '10.96.0.0/26', via: 'fd00:250::2' }])).toThrow(/not an IPv4 address/);
  });
});

describe('involvesVxlan', () => {
  it('is true if a VXLAN route is wanted or one is still in the kernel', () => {
    expect(involvesVxlan([], [])).toBe(false);
    expect(involvesVxlan(current, [])).toBe(true);
    expect(involvesVxlan([], [desiredAsIs[2]!])).toBe(true);
    expect(involvesVxlan([current[2]!], [desiredAsIs[0]!])).toBe(false);
  });
});

describe('parseJson', () => {
  it('takes empty output as an empty list and names the tool on garbage', () => {
    expect(parseJson('\n', 'ip route')).toEqual([]);
    expect(() => parseJson('RTNETLINK', 'ip route')).toThrow(/ip route output/);
  });
});
