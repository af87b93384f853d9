/**
 * IPv6 through LinuxDataplane on the real kernel, between two hosts each
 * running one: this namespace (h1, from scripts/in-netns.sh) and a peer host
 * namespace (h2) whose dataplane runs its commands through nsenter. Each host
 * has one dual-stack "container"; h1 has a second one.
 *
 *   c1  10.96.0.5  fd00:96::5  ─ veth ─┐                                 ┌─ veth ─ c2  10.96.0.69 fd00:96::45
 *   c1b 10.96.0.6  fd00:96::6  ─ veth ─┤ h1 ── 192.168.78.0/24 ──────── h2 ┤
 *       blocks 10.96.0.0/26, fd00:96::/122  fd00:250::/64    blocks 10.96.0.64/26, fd00:96::40/122
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { EndpointLink } from '../../src/dataplane/dataplane';
import { SpawnRunner, type CommandRunner } from '../../src/dataplane/linux/command-runner';
import { LinuxDataplane, writeProcSys, type SysctlWriter } from '../../src/dataplane/linux/linux-dataplane';
import { linkLocalOf } from '../../src/dataplane/linux/routes';
import { containerMac, endpointIfnames, isSluiceHostIfname } from '../../src/firewall/names';
import type { BlockRoute } from '../../src/routing/routes';
import { Netns, json, sh } from './kernel';
import { assertThrowawayNetns } from './netns-guard';

assertThrowawayNetns();
jest.setTimeout(60_000);

/** Runs the dataplane's commands in `ns`: the peer host's own dataplane. */
class NetnsRunner implements CommandRunner {
  private readonly inner = new SpawnRunner();

  constructor(private readonly ns: Netns) {}

  run(command: string, args: readonly string[], input?: string): Promise<string> {
    return this.inner.run('nsenter', [`--net=/run/netns/${this.ns.name}`, command, ...args], input);
  }
}

/** net/ sysctls follow the writer's namespace: written by a process in `ns`. */
const sysctlIn =
  (ns: Netns): SysctlWriter =>
  (key, value) => {
    ns.sh('sysctl', '-qw', `${key}=${value}`);
    return Promise.resolve();
  };

interface Route {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}
interface Neighbour {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

const GATEWAY_V6 = 'fd00:96::1';
const link = (id: string, address: string, addressV6: string): Required<EndpointLink> => ({
  ...endpointIfnames(id),
  address,
  mac: containerMac(address),
  mtu: 1400,
  addressV6,
  gatewayV6: GATEWAY_V6,
});
const e1 = link('a1a1a1a1a1a1a1a1', '10.96.0.5', 'fd00:96::5');
const e1b = link('a2a2a2a2a2a2a2a2', '10.96.0.6', 'fd00:96::6');
const e2 = link('b1b1b1b1b1b1b1b1', '10.96.0.69', 'fd00:96::45');

const dp1 = new LinuxDataplane(new SpawnRunner(), writeProcSys);
let h2: Netns;
let dp2: LinuxDataplane;
let c1: Netns;
let c1b: Netns;
let c2: Netns;
const namespaces: Netns[] = [];
let forwardingAfterInit: string;

const forwarding = (): string => readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8').trim();
const routes6 = (): Route[] => json<Route[]>('ip', '-j', '-6', 'route', 'show');
const neighbours6 = (...filter: string[]): Neighbour[] => json<Neighbour[]>('ip', '-j', '-6', 'neigh', 'show', ...filter);

/** Moves the container end of `e` from `host` (undefined: h1) into `ns` and configures it as Docker does after Join. */
function plug(e: Required<EndpointLink>, ns: Netns, host?: Netns): void {
  (host ? host.sh.bind(host) : sh)('ip', 'link', 'set', e.containerIfname, 'netns', ns.name);
  ns.sh('ip', 'link', 'set', e.containerIfname, 'up');
  ns.sh('ip', 'address', 'add', `${e.address}/16`, 'dev', e.containerIfname);
  ns.sh('ip', '-6', 'address', 'add', `${e.addressV6}/64`, 'dev', e.containerIfname, 'nodad');
  ns.sh('ip', '-6', 'route', 'add', 'default', 'via', GATEWAY_V6);
}

/**
 * What the container needs besides its /64 and default route to reach the pool's addresses elsewhere: the host
 * answers neighbour solicitations for the gateway only (proxy NDP has no "everything I route", unlike proxy ARP),
 * so the pool must not be on-link. Two halves of it via the gateway beat the /64 the address brings; the gateway
 * stays on-link by a /128 of its own. (Join's StaticRoutes can give Docker exactly these.)
 */
function routePoolViaGateway(ns: Netns, ifname: string): void {
  ns.sh('ip', '-6', 'route', 'add', `${GATEWAY_V6}/128`, 'dev', ifname);
  for (const half of ['fd00:96::/65', 'fd00:96:0:0:8000::/65']) ns.sh('ip', '-6', 'route', 'add', half, 'via', GATEWAY_V6);
}

/** A ping that may need a second try while the veth's own link-local address is still tentative. */
function reaches(ns: Netns, ip: string): boolean {
  return [1, 2, 3].some(() => ns.canPing(ip));
}

beforeAll(async () => {
  h2 = new Netns('v6h2');
  c1 = new Netns('v6c1');
  c1b = new Netns('v6c1b');
  c2 = new Netns('v6c2');
  namespaces.push(h2, c1, c1b, c2);
  dp2 = new LinuxDataplane(new NetnsRunner(h2), sysctlIn(h2));
  // The underlay, dual-stack.
  sh('ip', 'link', 'add', 'it6-up0', 'type', 'veth', 'peer', 'name', 'it6-up1');
  sh('ip', 'link', 'set', 'it6-up1', 'netns', h2.name);
  sh('ip', 'address', 'add', '192.168.78.1/24', 'dev', 'it6-up0');
  sh('ip', '-6', 'address', 'add', 'fd00:250::1/64', 'dev', 'it6-up0', 'nodad');
  sh('ip', 'link', 'set', 'it6-up0', 'up');
  h2.sh('ip', 'address', 'add', '192.168.78.2/24', 'dev', 'it6-up1');
  h2.sh('ip', '-6', 'address', 'add', 'fd00:250::2/64', 'dev', 'it6-up1', 'nodad');
  h2.sh('ip', 'link', 'set', 'it6-up1', 'up');

  // Another file of this run (sharing the namespace) may have turned it on already.
  writeFileSync('/proc/sys/net/ipv6/conf/all/forwarding', '0');
  await dp1.init();
  forwardingAfterInit = forwarding();
  await dp2.init();
  for (const dp of [dp1, dp2]) await dp.syncGateways(['10.96.0.1', GATEWAY_V6]);
  await dp1.addEndpoint(e1);
  await dp1.addEndpoint(e1b);
  await dp2.addEndpoint(e2);
  plug(e1, c1);
  plug(e1b, c1b);
  plug(e2, c2, h2);
});

afterAll(async () => {
  // Deleted here, not left to the namespaces' deletion, which the kernel finishes later: the next
  // file in this namespace lists the sluice veths.
  for (const e of [e1, e1b]) await dp1.removeEndpoint(e.hostIfname);
  await dp1.syncRoutes([]);
  await dp1.syncGateways([]);
  for (const ns of namespaces) ns.delete();
  sh('ip', 'link', 'del', 'it6-up0');
});

describe('dual-stack endpoints', () => {
  it('turns IPv6 forwarding on with the first IPv6 endpoint, not in init', () => {
    expect({ afterInit: forwardingAfterInit, afterEndpoint: forwarding() }).toEqual({ afterInit: '0', afterEndpoint: '1' });
  });

  it('plumbs the host side: /128 route, permanent neighbour, proxy NDP for the gateway, no router advertisements', () => {
    expect(routes6()).toContainEqual(expect.objectContaining({ dst: 'fd00:96::5', dev: e1.hostIfname, protocol: '252' }));
    expect(neighbours6('dev', e1.hostIfname)).toContainEqual(expect.objectContaining({ dst: 'fd00:96::5', lladdr: e1.mac, state: ['PERMANENT'] }));
    expect(neighbours6('proxy')).toContainEqual(expect.objectContaining({ dst: GATEWAY_V6, dev: e1.hostIfname }));
    const conf = (key: string) => readFileSync(`/proc/sys/net/ipv6/${key}`, 'utf8').trim();
    expect([conf(`conf/${e1.hostIfname}/proxy_ndp`), conf(`neigh/${e1.hostIfname}/proxy_delay`), conf(`conf/${e1.hostIfname}/accept_ra`)]).toEqual(['1', '0', '0']);
  });

  it('lets a container reach its gateway: the host answers for it with the veth\'s MAC', () => {
    expect(reaches(c1, GATEWAY_V6)).toBe(true);
    const [veth] = json<{ address: string }[]>('ip', '-j', 'link', 'show', 'dev', e1.hostIfname);
    const learnt = json<Neighbour[]>('nsenter', `--net=/run/netns/${c1.name}`, 'ip', '-j', '-6', 'neigh', 'show', GATEWAY_V6);
    expect(learnt).toEqual([expect.objectContaining({ lladdr: veth?.address })]);
  });

  it('answers for the gateway only: a container reaches others in its pool once the pool is routed via the gateway', () => {
    // Positive control of the neighbour solicitation the host leaves unanswered.
    expect(c1.canPing('fd00:96::6')).toBe(false);
    expect(json<Neighbour[]>('nsenter', `--net=/run/netns/${c1.name}`, 'ip', '-j', '-6', 'neigh', 'show', 'fd00:96::6')[0]?.lladdr).toBeUndefined();
    for (const [ns, e] of [[c1, e1], [c1b, e1b], [c2, e2]] as const) routePoolViaGateway(ns, e.containerIfname);
    expect(reaches(c1, 'fd00:96::6')).toBe(true);
    expect(reaches(c1b, 'fd00:96::5')).toBe(true);
  });

  it('removes every IPv6 trace with the veth: route, neighbour, proxy entry', async () => {
    const e3 = link('a3a3a3a3a3a3a3a3', '10.96.0.7', 'fd00:96::7');
    const traces = () => ({
      route: routes6().some((r) => r.dst === 'fd00:96::7'),
      neighbour: neighbours6().some((n) => n.dst === 'fd00:96::7'),
      proxy: neighbours6('proxy').some((n) => n.dev === e3.hostIfname),
    });
    await dp1.addEndpoint(e3);
    expect(traces()).toEqual({ route: true, neighbour: true, proxy: true });
    await dp1.removeEndpoint(e3.hostIfname);
    await dp1.removeEndpoint(e3.hostIfname);
    expect(traces()).toEqual({ route: false, neighbour: false, proxy: false });
    // The gateway stays answered on the other veths.
    expect(neighbours6('proxy').filter((n) => n.dst === GATEWAY_V6).map((n) => n.dev).sort()).toEqual([e1.hostIfname, e1b.hostIfname].sort());
  });
});

describe('IPv6 block routes between hosts', () => {
  const own1: BlockRoute[] = [
    { kind: 'blackhole', block: '10.96.0.0/26' },
    { kind: 'blackhole', block: 'fd00:96::/122' },
  ];
  const own2: BlockRoute[] = [
    { kind: 'blackhole', block: '10.96.0.64/26' },
    { kind: 'blackhole', block: 'fd00:96::40/122' },
  ];
  const ours6 = () => routes6().filter((r) => r.protocol === '252' && !(r.dev !== undefined && isSluiceHostIfname(r.dev)));

  it('carries container to container traffic over host-gw via the peer\'s IPv6 address', async () => {
    await dp1.syncRoutes(own1);
    await dp2.syncRoutes(own2);
    expect(c1.canPing('fd00:96::45')).toBe(false);
    await dp1.syncRoutes([...own1, { kind: 'host-gw', block: 'fd00:96::40/122', via: 'fd00:250::2' }]);
    await dp2.syncRoutes([...own2, { kind: 'host-gw', block: 'fd00:96::/122', via: 'fd00:250::1' }]);
    expect(ours6()).toEqual([
      expect.objectContaining({ type: 'blackhole', dst: 'fd00:96::/122' }),
      expect.objectContaining({ dst: 'fd00:96::40/122', gateway: 'fd00:250::2', dev: 'it6-up0' }),
    ]);
    expect(reaches(c1, 'fd00:96::45')).toBe(true);
    expect(reaches(c2, 'fd00:96::6')).toBe(true);
  });

  it('carries it through VXLAN over the IPv4 underlay via the peer VTEP\'s link-local address', async () => {
    const device = { vni: 43, port: 8473, mtu: 1350 };
    const { mac: mac1 } = await dp1.ensureVxlan({ ...device, localIp: '192.168.78.1' });
    const { mac: mac2 } = await dp2.ensureVxlan({ ...device, localIp: '192.168.78.2' });
    await dp1.syncRoutes([...own1, { kind: 'vxlan', block: 'fd00:96::40/122', nodeIp: '192.168.78.2', vtepMac: mac2, mtu: 1350 }]);
    await dp2.syncRoutes([...own2, { kind: 'vxlan', block: 'fd00:96::/122', nodeIp: '192.168.78.1', vtepMac: mac1, mtu: 1350 }]);
    expect(ours6()).toEqual([
      expect.objectContaining({ type: 'blackhole', dst: 'fd00:96::/122' }),
      expect.objectContaining({ dst: 'fd00:96::40/122', gateway: linkLocalOf(mac2), dev: 'sluice.vxlan', metrics: [{ mtu: 1350 }] }),
    ]);
    expect(neighbours6('dev', 'sluice.vxlan', 'nud', 'permanent')).toEqual([expect.objectContaining({ dst: linkLocalOf(mac2), lladdr: mac2 })]);
    const fdb = json<{ mac: string; dst?: string }[]>('bridge', '-j', 'fdb', 'show', 'dev', 'sluice.vxlan').filter((e) => e.dst !== undefined);
    expect(fdb).toEqual([expect.objectContaining({ mac: mac2, dst: '192.168.78.2' })]);
    const sent = () => json<{ stats64: { tx: { packets: number } } }[]>('ip', '-j', '-s', 'link', 'show', 'dev', 'sluice.vxlan')[0]!.stats64.tx.packets;
    const before = sent();
    expect(reaches(c1, 'fd00:96::45')).toBe(true);
    expect(sent()).toBeGreaterThan(before);
  });

  it('removes stale IPv6 routes and neighbours, leaving foreign routes and endpoint routes alone', async () => {
    sh('ip', '-6', 'route', 'add', 'fd00:200::/64', 'via', 'fd00:250::2', 'proto', 'static');
    try {
      await dp1.syncRoutes([]);
      expect(ours6()).toEqual([]);
      expect(neighbours6('dev', 'sluice.vxlan', 'nud', 'permanent')).toEqual([]);
      expect(routes6()).toContainEqual(expect.objectContaining({ dst: 'fd00:200::/64', gateway: 'fd00:250::2', protocol: 'static' }));
      expect(routes6()).toContainEqual(expect.objectContaining({ dst: 'fd00:96::5', dev: e1.hostIfname }));
      expect(c1.canPing('fd00:96::45')).toBe(false);
      // Local traffic needs no block route.
      expect(reaches(c1, 'fd00:96::6')).toBe(true);
    } finally {
      sh('ip', '-6', 'route', 'del', 'fd00:200::/64');
    }
  });
});
