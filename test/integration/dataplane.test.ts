/**
 * LinuxDataplane against the real kernel, inside the throwaway namespace of
 * scripts/in-netns.sh (this namespace plays the host). "Containers" and a
 * peer host are namespaces made here; traffic never leaves them.
 *
 *   c1 10.96.0.5/16 ─ veth ─┐                       ┌─ h2: 10.98.0.5 (host-gw), 10.97.0.5 (vxlan)
 *   c2 10.96.0.6/16 ─ veth ─┤ host, gw 10.96.0.1 ───┤  underlay 192.168.77.0/24
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { EndpointLink } from '../../src/dataplane/dataplane';
import { SpawnRunner } from '../../src/dataplane/linux/command-runner';
import { LinuxDataplane, writeProcSys } from '../../src/dataplane/linux/linux-dataplane';
import { LOCAL_SET, containerMac, endpointIfnames, vxlanMac } from '../../src/firewall/names';
import type { Action, Match, Rule } from '../../src/firewall/rule';
import type { FirewallState } from '../../src/firewall/state';
import type { EndpointRecord, Labels, NetworkRecord } from '../../src/model';
import { policyPackets, type PolicyPackets } from '../../src/metrics/rule-counters';
import { compileFirewall } from '../../src/policy/compile';
import { IncrementalFirewall, type ClusterRecords } from '../../src/policy/incremental';
import { parsePolicies, type Policy } from '../../src/policy-document/policy';
import { protection } from '../../src/policy/protect';
import { Netns, TapRunner, fetches, firewallText, json, serveHttp, sh } from './kernel';
import { assertThrowawayNetns } from './netns-guard';

assertThrowawayNetns();
jest.setTimeout(60_000);

interface Route {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string | number;
  flags?: string[];
}

const tap = new TapRunner(new SpawnRunner());
const dp = new LinuxDataplane(tap, writeProcSys);
const e1 = { ...endpointIfnames('e1e1e1e1e1e1e1e1'), address: '10.96.0.5', mac: containerMac('10.96.0.5'), mtu: 1400 };
const e2 = { ...endpointIfnames('e2e2e2e2e2e2e2e2'), address: '10.96.0.6', mac: containerMac('10.96.0.6'), mtu: 1400 };
const namespaces: Netns[] = [];
let c1: Netns;
let c2: Netns;
let h2: Netns;

function routes(): Route[] {
  return json<Route[]>('ip', '-j', 'route', 'show');
}

beforeAll(async () => {
  c1 = new Netns('c1');
  c2 = new Netns('c2');
  h2 = new Netns('h2');
  namespaces.push(c1, c2, h2);
  // The underlay to the peer host, on-link, MTU 9000 to tell it from the veths' 1400.
  sh('ip', 'link', 'add', 'it-up0', 'mtu', '9000', 'type', 'veth', 'peer', 'name', 'it-up1', 'mtu', '9000');
  sh('ip', 'address', 'add', '192.168.77.1/24', 'dev', 'it-up0');
  sh('ip', 'link', 'set', 'it-up0', 'up');
  sh('ip', 'link', 'set', 'it-up1', 'netns', h2.name);
  h2.sh('ip', 'address', 'add', '192.168.77.2/24', 'dev', 'it-up1');
  h2.sh('ip', 'link', 'set', 'it-up1', 'up');
  h2.sh('ip', 'address', 'add', '10.98.0.5/32', 'dev', 'lo');
  h2.sh('ip', 'address', 'add', '10.97.0.5/32', 'dev', 'lo');

  await dp.init();
  await dp.syncGateways(['10.96.0.1']);
  await dp.addEndpoint(e1);
  await dp.addEndpoint(e2);
  c1.adopt(e1.containerIfname, '10.96.0.5/16', '10.96.0.1');
  c2.adopt(e2.containerIfname, '10.96.0.6/16', '10.96.0.1');
});

afterAll(() => {
  for (const ns of namespaces) ns.delete();
});

describe('init', () => {
  it('enables forwarding, creates the gateway device and hooks each built-in chain once, however often it runs', async () => {
    await dp.init();
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe('1');
    const [gatewayDevice] = json<{ flags: string[] }[]>('ip', '-j', 'link', 'show', 'dev', 'sluice0');
    expect(gatewayDevice?.flags).toContain('UP');
    const hooks = (table: string) => sh('iptables-save', '-t', table).split('\n').filter((l) => l.includes('"sluice hook'));
    expect(hooks('filter')).toEqual([
      '-A INPUT -m comment --comment "sluice hook" -j SLUICE-INPUT',
      '-A FORWARD -o sluice.vxlan -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "sluice hook" -j TCPMSS --clamp-mss-to-pmtu',
      '-A FORWARD -i slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established from workload" -j ACCEPT',
      '-A FORWARD -o slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established to workload" -j ACCEPT',
      '-A FORWARD -m comment --comment "sluice hook" -j SLUICE-FORWARD',
    ]);
    expect(hooks('nat')).toEqual([
      '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "sluice hook" -j SLUICE-DNAT',
      '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment "sluice hook" -j SLUICE-DNAT',
      '-A POSTROUTING -m comment --comment "sluice hook" -j SLUICE-POSTROUTING',
    ]);
  });
});

describe('endpoints', () => {
  it('plumbs the veth: host side up with proxy ARP and a /32 route, MTU on both ends', () => {
    const [host] = json<{ mtu: number; flags: string[] }[]>('ip', '-j', 'link', 'show', 'dev', e1.hostIfname);
    expect(host).toMatchObject({ mtu: 1400, flags: expect.arrayContaining(['UP']) });
    expect(readFileSync(`/proc/sys/net/ipv4/conf/${e1.hostIfname}/proxy_arp`, 'utf8').trim()).toBe('1');
    expect(readFileSync(`/proc/sys/net/ipv4/neigh/${e1.hostIfname}/proxy_delay`, 'utf8').trim()).toBe('0');
    expect(routes()).toContainEqual(expect.objectContaining({ dst: '10.96.0.5', dev: e1.hostIfname, scope: 'link', protocol: '252' }));
    const [inside] = json<{ mtu: number; address: string }[]>('nsenter', `--net=/run/netns/${c1.name}`, 'ip', '-j', 'link', 'show', 'dev', e1.containerIfname);
    expect(inside).toMatchObject({ mtu: 1400, address: e1.mac });
  });

  it('knows the container\'s MAC from the start: no ARP for it, so no second of silence before it answers', () => {
    const [neighbour] = json<{ dst: string; lladdr: string; state: string[] }[]>('ip', '-j', 'neigh', 'show', 'dev', e1.hostIfname);
    expect(neighbour).toEqual(expect.objectContaining({ dst: '10.96.0.5', lladdr: e1.mac, state: ['PERMANENT'] }));
  });

  it('lets a container reach the gateway and another container', () => {
    expect(c1.canPing('10.96.0.1')).toBe(true);
    expect(c1.canPing('10.96.0.6')).toBe(true);
    expect(c2.canPing('10.96.0.5')).toBe(true);
  });

  it('refuses a veth name in use, and the endpoint that has it keeps working', async () => {
    await expect(dp.addEndpoint({ ...e1, address: '10.96.0.9' })).rejects.toThrow(`veth ${e1.hostIfname} exists already`);
    expect(routes().map((r) => r.dst)).not.toContain('10.96.0.9');
    expect(c1.canPing('10.96.0.6')).toBe(true);
  });

  it('lists exactly the Sluice veths', async () => {
    sh('ip', 'link', 'add', 'vethforeign', 'type', 'veth', 'peer', 'name', 'vethforeign1');
    try {
      await expect(dp.listEndpoints()).resolves.toEqual(expect.arrayContaining([e1.hostIfname, e2.hostIfname]));
      expect(await dp.listEndpoints()).toHaveLength(2);
    } finally {
      sh('ip', 'link', 'del', 'vethforeign');
    }
  });

  it('removes the link, its peer and its route; an absent endpoint is fine', async () => {
    const e3 = { ...endpointIfnames('e3e3e3e3e3e3e3e3'), address: '10.96.0.7', mac: containerMac('10.96.0.7'), mtu: 1400 };
    await dp.addEndpoint(e3);
    await dp.removeEndpoint(e3.hostIfname);
    await dp.removeEndpoint(e3.hostIfname);
    const names = json<{ ifname: string }[]>('ip', '-j', 'link', 'show').map((l) => l.ifname);
    expect(names).not.toContain(e3.hostIfname);
    expect(names).not.toContain(e3.containerIfname);
    expect(routes().map((r) => r.dst)).not.toContain('10.96.0.7');
  });

  // Its time is part of plugin-time's CreateEndpoint+Join figure (bench/scenarios/plugin-time.ts).
  it('adds and removes twenty endpoints in turn, leaving none of them behind', async () => {
    for (let i = 0; i < 20; i++) {
      const link = { ...endpointIfnames(`ee${String(i).padStart(2, '0')}eeeeeeeeeeee`), address: `10.96.1.${i + 1}`, mac: containerMac(`10.96.1.${i + 1}`), mtu: 1400 };
      await dp.addEndpoint(link);
      await dp.removeEndpoint(link.hostIfname);
    }
    expect(await dp.listEndpoints()).toHaveLength(2);
  });
});

describe('gateways', () => {
  it('makes the gateway addresses exactly the given set', async () => {
    const addresses = () =>
      json<{ addr_info: { family: string; local: string }[] }[]>('ip', '-j', 'address', 'show', 'dev', 'sluice0')
        .flatMap((l) => l.addr_info)
        .filter((a) => a.family === 'inet')
        .map((a) => a.local)
        .sort();
    await dp.syncGateways(['10.96.0.1', '10.99.0.1']);
    expect(addresses()).toEqual(['10.96.0.1', '10.99.0.1']);
    await dp.syncGateways(['10.96.0.1']);
    expect(addresses()).toEqual(['10.96.0.1']);
    expect(c1.canPing('10.96.0.1')).toBe(true);
  });
});

describe('routes', () => {
  const ours = () => routes().filter((r) => r.protocol === '252' && !r.dev?.startsWith('sl'));

  beforeAll(() => {
    sh('ip', 'route', 'add', '10.200.0.0/24', 'via', '192.168.77.2', 'proto', 'static');
    // The peer host routes the containers' replies back over the underlay.
    h2.sh('ip', 'route', 'add', '10.96.0.0/16', 'via', '192.168.77.1');
  });

  it('adds, replaces and removes exactly its own routes, leaving foreign ones and endpoint routes alone', async () => {
    await dp.syncRoutes([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'host-gw', block: '10.98.0.0/26', via: '192.168.77.2' },
      { kind: 'host-gw', block: '10.99.0.0/26', via: '192.168.77.2' },
    ]);
    expect(ours()).toEqual([
      expect.objectContaining({ type: 'blackhole', dst: '10.96.0.0/26' }),
      expect.objectContaining({ dst: '10.98.0.0/26', gateway: '192.168.77.2', dev: 'it-up0' }),
      expect.objectContaining({ dst: '10.99.0.0/26', gateway: '192.168.77.2', dev: 'it-up0' }),
    ]);
    // The blackhole covers the containers' block, but their /32 routes are more specific.
    expect(c1.canPing('10.96.0.6')).toBe(true);
    expect(c1.canPing('10.98.0.5')).toBe(true);

    await dp.syncRoutes([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'blackhole', block: '10.98.0.0/26' },
    ]);
    expect(ours()).toEqual([
      expect.objectContaining({ type: 'blackhole', dst: '10.96.0.0/26' }),
      expect.objectContaining({ type: 'blackhole', dst: '10.98.0.0/26' }),
    ]);
    expect(c1.canPing('10.98.0.5')).toBe(false);

    await dp.syncRoutes([]);
    expect(ours()).toEqual([]);
    expect(routes()).toContainEqual(expect.objectContaining({ dst: '10.200.0.0/24', gateway: '192.168.77.2', protocol: 'static' }));
    expect(routes()).toContainEqual(expect.objectContaining({ dst: '10.96.0.5', dev: e1.hostIfname }));
  });

  it('answers on-link and MTU questions', async () => {
    await expect(dp.isOnLink('192.168.77.2')).resolves.toBe(true);
    await expect(dp.isOnLink('10.200.0.9')).resolves.toBe(false);
    await expect(dp.mtuTowards('192.168.77.2')).resolves.toBe(9000);
    await expect(dp.mtuTowards('10.96.0.5')).resolves.toBe(1400);
    await expect(dp.mtuTowards('192.168.77.1')).resolves.toBe(9000); // own address: the interface holding it
  });
});

describe('vxlan', () => {
  const device = { vni: 42, localIp: '192.168.77.1', port: 8472, mtu: 1450 };
  const peerMac = vxlanMac(42, '192.168.77.2');
  const neighbours = () => json<{ dst: string; lladdr: string }[]>('ip', '-j', 'neigh', 'show', 'dev', 'sluice.vxlan', 'nud', 'permanent');
  const fdb = () => json<{ mac: string; dst?: string }[]>('bridge', '-j', 'fdb', 'show', 'dev', 'sluice.vxlan').filter((e) => e.dst !== undefined);
  let mac: string;

  beforeAll(async () => {
    ({ mac } = await dp.ensureVxlan(device));
    // The peer host, programmed by hand with the same recipe, routes replies back through VXLAN.
    h2.sh('ip', 'link', 'add', 'vx', 'mtu', '1450', 'address', peerMac, 'type', 'vxlan', 'id', '42', 'local', '192.168.77.2', 'dstport', '8472', 'nolearning');
    h2.sh('ip', 'link', 'set', 'vx', 'up');
    h2.sh('ip', 'route', 'replace', '10.96.0.0/16', 'via', '192.168.77.1', 'dev', 'vx', 'onlink');
    h2.sh('ip', 'neigh', 'replace', '192.168.77.1', 'lladdr', mac, 'dev', 'vx', 'nud', 'permanent');
    h2.sh('bridge', 'fdb', 'replace', mac, 'dev', 'vx', 'dst', '192.168.77.1', 'self', 'permanent');
  });

  it('creates the device as asked, and keeps it (and its MAC) when asked again', async () => {
    const [link] = json<{ mtu: number; address: string; flags: string[]; linkinfo: { info_data: object } }[]>('ip', '-j', '-d', 'link', 'show', 'dev', 'sluice.vxlan');
    expect(link).toMatchObject({ mtu: 1450, address: mac, flags: expect.arrayContaining(['UP']) });
    expect(link?.linkinfo.info_data).toMatchObject({ id: 42, local: '192.168.77.1', port: 8472, learning: false });
    const ifindex = () => json<{ ifindex: number }[]>('ip', '-j', 'link', 'show', 'dev', 'sluice.vxlan')[0]?.ifindex;
    const before = ifindex();
    await expect(dp.ensureVxlan(device)).resolves.toEqual({ mac });
    expect(ifindex()).toBe(before);
  });

  it('programs route, neighbour and FDB entry per peer, carries traffic, and removes them when the peer leaves', async () => {
    await dp.syncRoutes([
      { kind: 'vxlan', block: '10.97.0.0/26', nodeIp: '192.168.77.2', vtepMac: peerMac, mtu: 1450 },
      { kind: 'vxlan', block: '10.97.1.0/26', nodeIp: '192.168.77.3', vtepMac: '0e:00:00:00:00:03', mtu: 1450 },
    ]);
    expect(routes()).toContainEqual(expect.objectContaining({ dst: '10.97.0.0/26', gateway: '192.168.77.2', dev: 'sluice.vxlan', flags: ['onlink'], metrics: [{ mtu: 1450 }] }));
    expect(neighbours()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '192.168.77.2', lladdr: peerMac }),
        expect.objectContaining({ dst: '192.168.77.3', lladdr: '0e:00:00:00:00:03' }),
      ]),
    );
    expect(fdb()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ mac: peerMac, dst: '192.168.77.2' }),
        expect.objectContaining({ mac: '0e:00:00:00:00:03', dst: '192.168.77.3' }),
      ]),
    );
    expect(c1.canPing('10.97.0.5')).toBe(true);

    await dp.syncRoutes([{ kind: 'vxlan', block: '10.97.0.0/26', nodeIp: '192.168.77.2', vtepMac: peerMac, mtu: 1450 }]);
    expect(routes().map((r) => r.dst)).not.toContain('10.97.1.0/26');
    expect(neighbours().map((n) => n.dst)).toEqual(['192.168.77.2']);
    expect(fdb().map((e) => e.dst)).toEqual(['192.168.77.2']);
    expect(c1.canPing('10.97.0.5')).toBe(true);

    await dp.syncRoutes([]);
    expect(neighbours()).toEqual([]);
    expect(fdb()).toEqual([]);
    expect(c1.canPing('10.97.0.5')).toBe(false);
  });
});

describe('firewall', () => {
  const rule = (comment: string, action: Action, ...matches: Match[]): Rule => ({ comment, matches, action });
  const RETURN: Action = { kind: 'RETURN' };
  const forward = (extra: Rule[] = []) => ({
    name: 'SLUICE-FORWARD',
    rules: [
      ...extra,
      rule('from workloads', { kind: 'jump', chain: 'SLUICE-it-a' }, { kind: 'in-interface', name: 'sl+' }),
      rule('to workloads', { kind: 'jump', chain: 'SLUICE-it-b' }, { kind: 'out-interface', name: 'sl+' }),
    ],
  });
  const base: FirewallState = {
    ipsets: [{ name: 'sluice-it-nets', type: 'hash:net', members: ['10.96.0.0/26', '10.98.0.0/24'] }],
    filter: [
      forward(),
      { name: 'SLUICE-it-a', rules: [rule('count a', RETURN)] },
      { name: 'SLUICE-it-b', rules: [rule('count b', RETURN, { kind: 'set', set: 'sluice-it-nets', sides: 'src' })] },
    ],
    nat: [
      {
        name: 'SLUICE-POSTROUTING',
        rules: [rule('masquerade', { kind: 'MASQUERADE' }, { kind: 'set', set: 'sluice-it-nets', sides: 'src' }, { kind: 'out-interface', name: 'sl+', negated: true })],
      },
    ],
  };
  const save = (table: string, counters = false) => sh('iptables-save', ...(counters ? ['-c'] : []), '-t', table);
  const setNames = () => sh('ipset', 'list', '-n').split('\n').filter((n) => n.startsWith('sluice-'));
  /** Packet counter of the first rule of `chain` (iptables-save -c prints "[packets:bytes] -A CHAIN ..."). */
  const packets = (chain: string) => Number(new RegExp(`^\\[(\\d+):\\d+\\] -A ${chain} `, 'm').exec(save('filter', true))?.[1]);

  it('creates chains, sets and hooks', async () => {
    await dp.applyFirewall(base);
    const filter = save('filter');
    expect(filter).toContain('-A SLUICE-FORWARD -i sl+ -m comment --comment "from workloads" -j SLUICE-it-a');
    expect(filter).toContain('-A SLUICE-it-b -m comment --comment "count b" -m set --match-set sluice-it-nets src -j RETURN');
    expect(save('nat')).toContain('-A SLUICE-POSTROUTING');
    expect(setNames()).toEqual(['sluice-it-nets']);
    expect(sh('ipset', 'list', 'sluice-it-nets')).toMatch(/10\.98\.0\.0\/24/);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  it('rewrites only the chain that changed: the other keeps its counters', async () => {
    expect(c1.canPing('10.96.0.6')).toBe(true);
    expect(packets('SLUICE-it-a')).toBeGreaterThan(0);
    expect(packets('SLUICE-it-b')).toBeGreaterThan(0);
    const countA = packets('SLUICE-it-a');

    tap.calls.length = 0;
    const changed = { ...base, filter: [base.filter[0]!, base.filter[1]!, { name: 'SLUICE-it-b', rules: [rule('count b, rewritten', RETURN)] }] };
    await dp.applyFirewall(changed);
    expect(tap.calls).toEqual([
      {
        commandLine: 'iptables-restore --noflush --wait=10',
        input: '*filter\n:SLUICE-it-b - [0:0]\n-A SLUICE-it-b -m comment --comment "count b, rewritten" -j RETURN\nCOMMIT\n',
      },
    ]);
    expect(packets('SLUICE-it-a')).toBe(countA);
    expect(packets('SLUICE-it-b')).toBe(0);
    expect(save('filter')).toContain('-A SLUICE-it-b -m comment --comment "count b, rewritten" -j RETURN');
  });

  it('applies a rule matching an ipset, and removes both without failing', async () => {
    const dropPeers: FirewallState = {
      ...base,
      ipsets: [...base.ipsets, { name: 'sluice-it-peers', type: 'hash:ip', members: ['10.96.0.6'] }],
      filter: [forward([rule('drop peers', { kind: 'DROP' }, { kind: 'set', set: 'sluice-it-peers', sides: 'dst' })]), ...base.filter.slice(1)],
    };
    await dp.applyFirewall(dropPeers);
    // To a member (replies from one never reach the chain: the FORWARD hooks accept them first).
    expect(c1.canPing('10.96.0.6')).toBe(false);
    expect(c2.canPing('10.96.0.1')).toBe(true); // to the host itself: not forwarded

    // The set goes after the rule that used it: the rule first, then the set.
    await dp.applyFirewall(base);
    expect(setNames()).toEqual(['sluice-it-nets']);
    expect(c1.canPing('10.96.0.6')).toBe(true);
  });

  it('changes set membership without touching rules', async () => {
    tap.calls.length = 0;
    await dp.applyFirewall({ ...base, ipsets: [{ name: 'sluice-it-nets', type: 'hash:net', members: ['10.96.0.0/26', '10.99.0.0/24'] }] });
    expect(tap.calls).toEqual([
      { commandLine: 'ipset restore -exist', input: 'add sluice-it-nets 10.99.0.0/24\n' },
      { commandLine: 'ipset restore -exist', input: 'del sluice-it-nets 10.98.0.0/24\n' },
    ]);
    await dp.applyFirewall(base);
  });

  it('detects out-of-band damage and repairs it on the next apply', async () => {
    sh('iptables', '-F', 'SLUICE-FORWARD');
    sh('iptables', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'sluice hook', '-j', 'SLUICE-POSTROUTING');
    sh('ipset', 'del', 'sluice-it-nets', '10.98.0.0/24');
    await expect(dp.verifyFirewall()).resolves.toEqual([
      'filter chain SLUICE-FORWARD has 0 rules that differ from the 2 applied',
      'hook "sluice hook" from nat POSTROUTING to SLUICE-POSTROUTING is missing',
      'ipset sluice-it-nets holds 1 members that differ from the 2 applied',
    ]);
    await dp.applyFirewall(base);
    expect(save('filter')).toContain('-A SLUICE-FORWARD -i sl+ -m comment --comment "from workloads" -j SLUICE-it-a');
    expect(save('nat')).toContain('-A POSTROUTING -m comment --comment "sluice hook" -j SLUICE-POSTROUTING');
    expect(sh('ipset', 'list', 'sluice-it-nets')).toMatch(/10\.98\.0\.0\/24/);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
    // Once seen, the kernel's spelling is checked exactly: an edit keeping comments and targets is found too.
    sh('iptables', '-R', 'SLUICE-it-a', '1', '-s', '10.1.1.1', '-m', 'comment', '--comment', 'count a', '-j', 'RETURN');
    await expect(dp.verifyFirewall()).resolves.toEqual(['filter chain SLUICE-it-a has 1 rules that differ from the 1 applied']);
    await dp.applyFirewall(base);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  it('starts from the kernel after a restart: leftovers are removed, chains serving containers stay hooked', async () => {
    sh('ipset', 'create', 'sluice-tmp', 'hash:ip');
    sh('iptables', '-N', 'SLUICE-it-leftover');
    const restarted = new LinuxDataplane();
    await restarted.init();
    await restarted.applyFirewall(base);
    expect(save('filter')).not.toContain('SLUICE-it-leftover');
    expect(setNames()).toEqual(['sluice-it-nets']);
    await expect(restarted.verifyFirewall()).resolves.toEqual([]);
    await dp.applyFirewall(base); // the first instance's cache is still right
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  // Their time is part of policy-convergence and run-to-policy (bench/scenarios/).
  it('applies a chain rewrite and an ipset member change round after round, each verified, then the base again', async () => {
    for (let i = 0; i < 20; i++) {
      const chainChange = { ...base, filter: [...base.filter, { name: 'SLUICE-it-c', rules: [rule(`round ${i}`, RETURN)] }] };
      await dp.applyFirewall(chainChange);
      expect(save('filter')).toContain(`round ${i}`);
      const memberChange = { ...chainChange, ipsets: [{ ...base.ipsets[0]!, members: [...base.ipsets[0]!.members, `10.100.${i}.0/24`] }] };
      await dp.applyFirewall(memberChange);
      await expect(dp.verifyFirewall()).resolves.toEqual([]);
    }
    await dp.applyFirewall(base);
    expect(save('filter')).not.toContain('SLUICE-it-c');
  });

  it('leaves only the empty top-level chains and their hooks when the state is empty', async () => {
    await dp.applyFirewall({ ipsets: [], filter: [], nat: [] });
    const ours = (table: string) => save(table).split('\n').filter((l) => l.includes('SLUICE-'));
    expect(ours('filter')).toEqual([
      ':SLUICE-FORWARD - [0:0]',
      ':SLUICE-INPUT - [0:0]',
      '-A INPUT -m comment --comment "sluice hook" -j SLUICE-INPUT',
      '-A FORWARD -m comment --comment "sluice hook" -j SLUICE-FORWARD',
    ]);
    expect(ours('nat')).toHaveLength(5);
    expect(setNames()).toEqual([]);
  });
});

describe('compiled firewall', () => {
  const appnet: NetworkRecord = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1', name: 'appnet' };
  const record = (link: Pick<EndpointLink, 'hostIfname' | 'address'>, node: string, labels: Labels | null): EndpointRecord => ({
    id: link.hostIfname,
    network: appnet.key,
    node,
    address: link.address,
    hostIfname: link.hostIfname,
    labels,
    ports: [],
  });
  const client = record(e1, 'h1', { role: 'client' });
  const web = record(e2, 'h1', { role: 'web' });
  const clientLocked = parsePolicies(`
kind: NetworkPolicy
name: client-locked
selector: role == 'client'
egress: []
`);
  /** Also has a peer selector, whose set holds remote endpoints too. */
  const webFromClient = parsePolicies(`
kind: NetworkPolicy
name: web-from-client
selector: role == 'web'
ingress: [{action: allow, protocol: tcp, from: role == 'client', ports: [80]}]
`);
  const compile = (endpoints: EndpointRecord[], policies: Policy[] = []) => compileFirewall({ node: 'h1', networks: [appnet], endpoints, policies });
  const commands = () => tap.calls.map((c) => c.commandLine);
  /** Packet counter of rule `index` (1-based) of a chain. */
  const counter = (chain: string, index: number) =>
    Number(sh('iptables', '-t', 'filter', '-L', chain, String(index), '-v', '-x', '-n').trim().split(/\s+/)[0]);

  beforeAll(async () => {
    await dp.applyFirewall(compile([client, web]));
  });

  it('lets containers of one network talk and reach the host: the local set matches address and veth', () => {
    expect(c1.canPing('10.96.0.6')).toBe(true);
    expect(c2.canPing('10.96.0.5')).toBe(true);
    expect(c1.canPing('10.96.0.1')).toBe(true);
  });

  it("drops what a container sends from its neighbour's address", () => {
    c1.sh('ip', 'address', 'add', '10.96.0.6/32', 'dev', e1.containerIfname);
    try {
      const dropped = counter('SLUICE-FROM-WL', 1);
      // The address is in the local set, but with the other veth.
      expect(c1.canPingFrom('10.96.0.6', '10.96.0.1')).toBe(false);
      expect(counter('SLUICE-FROM-WL', 1)).toBeGreaterThan(dropped);
    } finally {
      c1.sh('ip', 'address', 'del', '10.96.0.6/32', 'dev', e1.containerIfname);
    }
    expect(c1.canPing('10.96.0.1')).toBe(true);
  });

  it('fails closed while labels are unknown, in both directions and towards the host, with one ipset restore', async () => {
    tap.calls.length = 0;
    await dp.applyFirewall(compile([client, { ...web, labels: null }]));
    expect(commands()).toEqual(['ipset restore -exist']);
    expect(c1.canPing('10.96.0.6')).toBe(false);
    expect(c2.canPing('10.96.0.5')).toBe(false);
    expect(c2.canPing('10.96.0.1')).toBe(false);

    tap.calls.length = 0;
    await dp.applyFirewall(compile([client, web]));
    expect(commands()).toEqual(['ipset restore -exist']);
    expect(c2.canPing('10.96.0.5')).toBe(true);
    expect(c2.canPing('10.96.0.1')).toBe(true);
  });

  it('applies egress policy to traffic for the host too, and lets replies through', async () => {
    await dp.applyFirewall(compile([client, web], clientLocked));
    expect(c1.canPing('10.96.0.6')).toBe(false);
    expect(c1.canPing('10.96.0.1')).toBe(false);
    // Connections to the locked container: its replies are conntrack's, forwarded or to the host.
    expect(c2.canPing('10.96.0.5')).toBe(true);
    expect(spawnPing('10.96.0.5')).toBe(true);
    await dp.applyFirewall(compile([client, web]));
    expect(c1.canPing('10.96.0.1')).toBe(true);
  });

  it('keeps containers from the control plane, on another host or this one, whatever their policy; other ports stay open', async () => {
    const allowAll = parsePolicies('{kind: NetworkPolicy, name: allow-all, selector: all(), egress: [{action: allow}]}');
    // etcd on the peer host h2; this host is 192.168.77.1.
    const plane = { store: [{ address: '192.168.77.2', port: 2379 }], extra: [], agentPorts: [] };
    const closed = compileFirewall({
      node: 'h1',
      networks: [appnet],
      endpoints: [client, web],
      policies: allowAll,
      protection: protection(plane, ['192.168.77.1', '192.168.77.2'], '192.168.77.1'),
    });
    const servers = [
      await serveHttp('192.168.77.2', 2379, h2),
      await serveHttp('192.168.77.2', 8080, h2),
      await serveHttp('0.0.0.0', 2375),
      await serveHttp('0.0.0.0', 8081),
    ];
    try {
      await dp.applyFirewall(closed);
      expect({
        'etcd on h2': c1.canFetch('http://192.168.77.2:2379/'),
        'another port of h2': c1.canFetch('http://192.168.77.2:8080/'),
        'docker port of this host, its gateway address': c1.canFetch('http://10.96.0.1:2375/'),
        'docker port of this host, its node address': c1.canFetch('http://192.168.77.1:2375/'),
        'another port of this host': c1.canFetch('http://10.96.0.1:8081/'),
      }).toEqual({
        'etcd on h2': false,
        'another port of h2': true,
        'docker port of this host, its gateway address': false,
        'docker port of this host, its node address': false,
        'another port of this host': true,
      });
      // The host itself still reaches etcd.
      expect(fetches('http://192.168.77.2:2379/')).toBe(true);
      // Without the protection the same policy lets the container in: the drop above is the protection's.
      await dp.applyFirewall(compile([client, web], allowAll));
      expect(c1.canFetch('http://192.168.77.2:2379/')).toBe(true);
      expect(c1.canFetch('http://10.96.0.1:2375/')).toBe(true);
    } finally {
      for (const server of servers) server.stop();
      await dp.applyFirewall(compile([client, web]));
    }
  });

  it('counts the packets of a policy\'s allow rule and of its default deny, in one iptables-save', async () => {
    await dp.applyFirewall(compile([client, web], webFromClient));
    const server = await serveHttp('10.96.0.6', 80, c2);
    const read = async (): Promise<PolicyPackets> => {
      tap.calls.length = 0;
      const packets = policyPackets(await dp.ruleCounters());
      expect(commands()).toEqual(['iptables-save -c -t filter']);
      return packets;
    };
    const allowed = (p: PolicyPackets) => p.rules.find((r) => r.policy === 'web-from-client' && r.direction === 'ingress' && r.rule === 0)?.packets;
    try {
      const before = await read();
      expect(before.rules.map((r) => `${r.policy} ${r.direction}[${r.rule}] ${r.action}`)).toEqual(['web-from-client ingress[0] allow']);
      expect(c1.canFetch('http://10.96.0.6/')).toBe(true);
      // Ping is not TCP 80: web's ingress default-denies it.
      expect(c1.canPing('10.96.0.6')).toBe(false);
      const after = await read();
      expect(allowed(after)).toBeGreaterThan(allowed(before)!);
      expect(after.defaultDeny.ingress).toBeGreaterThan(before.defaultDeny.ingress);
      expect(after.defaultDeny.egress).toBe(before.defaultDeny.egress);
    } finally {
      server.stop();
      await dp.applyFirewall(compile([client, web]));
    }
  });

  it('adds and removes endpoints, local or remote, and learns labels with ipset restore alone', async () => {
    const e3 = { ...endpointIfnames('e3e3e3e3e3e3e3e3'), address: '10.96.0.7' };
    const local3 = record(e3, 'h1', { role: 'web' });
    const remote = record({ hostIfname: 'slv0000000000f', address: '10.96.9.9' }, 'h2', { role: 'client' });
    const policies = [...clientLocked, ...webFromClient];
    await dp.applyFirewall(compile([client, web], policies));
    const steps: EndpointRecord[][] = [
      [client, web, local3],
      [client, web, local3, remote],
      [client, web, { ...local3, labels: null }, remote],
      [client, web, { ...local3, labels: { role: 'client' } }, remote],
      [client, web],
    ];
    for (const endpoints of steps) {
      tap.calls.length = 0;
      await dp.applyFirewall(compile(endpoints, policies));
      expect(commands()).toEqual(['ipset restore -exist']);
    }
    expect(sh('ipset', 'list', 'sluice-local')).toContain(`10.96.0.5,${e1.hostIfname}`);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  // Their time is part of run-to-policy and policy-convergence (bench/scenarios/).
  it('applies one endpoint added or removed among 70 with an ipset restore alone; a policy change restores chains', async () => {
    const policies = [
      ...webFromClient,
      ...parsePolicies(`
kind: NetworkPolicy
name: client-egress
selector: role == 'client'
egress: [{action: allow, protocol: tcp, to: role == 'web'}, {action: allow, protocol: udp, ports: [53]}]
`),
    ];
    // 20 local and 50 remote endpoints, as in the figure measured before per-endpoint chains went.
    const many = (node: string, third: number, count: number) =>
      Array.from({ length: count }, (_, i) =>
        record({ hostIfname: endpointIfnames(`${third.toString(16)}${String(i).padStart(15, '0')}`).hostIfname, address: `10.96.${third}.${i + 1}` }, node, {
          role: i % 2 ? 'web' : 'client',
        }),
      );
    const base = [client, web, ...many('h1', 1, 20), ...many('h2', 2, 50)];
    await dp.applyFirewall(compileFirewall({ node: 'h1', networks: [appnet], endpoints: base, policies }));
    for (let i = 0; i < 20; i++) {
      const extra = record({ hostIfname: endpointIfnames(`f${String(i).padStart(15, '0')}`).hostIfname, address: `10.96.3.${i + 1}` }, 'h1', { role: 'web' });
      tap.calls.length = 0;
      await dp.applyFirewall(compileFirewall({ node: 'h1', networks: [appnet], endpoints: [...base, extra], policies }));
      expect(commands()).toEqual(['ipset restore -exist']);
      tap.calls.length = 0;
      await dp.applyFirewall(compileFirewall({ node: 'h1', networks: [appnet], endpoints: base, policies }));
      expect(commands()).toEqual(['ipset restore -exist']);
      const edited = policies.map((p) => (p.name === 'web-from-client' ? { ...p, ingress: [{ action: 'allow' as const, protocol: 'tcp' as const, ports: [8080] }] } : p));
      for (const version of [edited, policies]) {
        tap.calls.length = 0;
        await dp.applyFirewall(compileFirewall({ node: 'h1', networks: [appnet], endpoints: base, policies: version }));
        expect(commands()).toContain('iptables-restore --noflush --wait=10');
      }
    }
    await dp.applyFirewall({ ipsets: [], filter: [], nat: [] });
  });
});

describe('firewall changes', () => {
  const appnet: NetworkRecord = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1', name: 'appnet' };
  const dbnet: NetworkRecord = { key: '10.97.0.0-16', subnet: '10.97.0.0/16', blockSize: 26, gateway: '10.97.0.1', name: 'dbnet', settings: { internal: true, auxAddresses: {} } };
  const record = (id: string, node: string, address: string, labels: Labels | null, ports: EndpointRecord['ports'] = []): EndpointRecord => ({
    id,
    network: address.startsWith('10.97.') ? dbnet.key : appnet.key,
    node,
    address,
    hostIfname: endpointIfnames(id).hostIfname,
    labels,
    ports,
  });
  const kernelState = (): string => firewallText('iptables', 'sluice-');

  it('leaves the kernel exactly as a full apply of the same state does, step after step', async () => {
    const endpoints = new Map<string, EndpointRecord>([
      ['h1/e1', record('e1e1e1e1e1e1e1e1', 'h1', e1.address, { role: 'client' })],
      ['h1/e2', record('e2e2e2e2e2e2e2e2', 'h1', e2.address, { role: 'web' })],
    ]);
    const policies = new Map<string, Policy>(parsePolicies(`
kind: NetworkPolicy
name: web-from-client
selector: role == 'web'
ingress: [{action: allow, protocol: tcp, from: role == 'client', ports: [80]}]
`).map((p) => [p.name, p]));
    const networks = new Map([[appnet.key, appnet]]);
    const records: ClusterRecords = { networks, endpoints, policies };
    const incremental = new IncrementalFirewall('h1');
    incremental.update(records);
    await dp.applyFirewall(incremental.state());
    const steps: [string, () => void][] = [
      ['a remote container starts', () => endpoints.set('h2/r1', record('a1a1a1a1a1a1a1a1', 'h2', '10.96.1.7', { role: 'client' }))],
      ['a local container publishes a port', () => endpoints.set('h1/e2', { ...endpoints.get('h1/e2')!, ports: [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }] })],
      ['a remote container is relabelled', () => endpoints.set('h2/r1', { ...endpoints.get('h2/r1')!, labels: { role: 'web' } })],
      [
        'a policy with a new selector and CIDRs arrives',
        () => {
          const [p] = parsePolicies("kind: NetworkPolicy\nname: client-out\nselector: role == 'client'\negress: [{action: allow, to: role == 'web'}, {action: deny, toNets: [192.0.2.0/24]}]\n");
          policies.set(p!.name, p!);
        },
      ],
      ['an internal network comes', () => networks.set(dbnet.key, dbnet)],
      ['a policy changes', () => policies.set('web-from-client', { ...policies.get('web-from-client')!, ingress: [{ action: 'allow', protocol: 'tcp', ports: [8080] }] })],
      ['a policy goes', () => policies.delete('client-out')],
      ['the remote container stops', () => endpoints.delete('h2/r1')],
      ['the network goes', () => networks.delete(dbnet.key)],
    ];
    for (const [what, step] of steps) {
      step();
      tap.calls.length = 0;
      await dp.applyFirewallChange(incremental.update(records));
      // Another host's container costs at most an ipset restore, no iptables (the last one stops in no set: nothing).
      if (/remote/.test(what)) expect([what, ...tap.calls.map((c) => c.commandLine)]).toEqual([what, ...(/stops/.test(what) ? [] : ['ipset restore -exist'])]);
      const changed = kernelState();
      // The reference: a dataplane that knows nothing reads the kernel and applies the full compile.
      const restarted = new LinuxDataplane();
      await restarted.applyFirewall(compileFirewall({ node: 'h1', networks: [...networks.values()], endpoints: [...endpoints.values()], policies: [...policies.values()] }));
      expect(`${what}\n${changed}`).toBe(`${what}\n${kernelState()}`);
      await expect(dp.verifyFirewall()).resolves.toEqual([]);
    }
    // Positive control: a change the full state does not have is seen.
    await dp.applyFirewallChange({ createdSets: [], members: [{ name: LOCAL_SET, add: ['10.96.9.9,slvfffffffffff'], remove: [] }], chains: [], removedChains: [], destroyedSets: [] });
    const extra = kernelState();
    await new LinuxDataplane().applyFirewall(incremental.state());
    expect(kernelState()).not.toBe(extra);
    await dp.applyFirewall({ ipsets: [], filter: [], nat: [] });
  });
});

/** Ping from this namespace, the host. */
function spawnPing(ip: string): boolean {
  return spawnSync('ping', ['-c1', '-W1', ip], { stdio: 'ignore' }).status === 0;
}
