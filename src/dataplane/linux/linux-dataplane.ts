/**
 * The Dataplane on a Linux host, through iproute2, iptables and ipset. Each
 * call costs a fixed, small number of processes (spawning dominates the cost
 * on small hosts): links and routes change in one `ip -batch -`, sysctls are
 * plain file writes, the firewall is left to IptablesFirewall (one per family).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { DataplaneError } from '../../errors';
import { KeyedMutex } from '../../util/keyed-mutex';
import type { FirewallChange, FirewallState } from '../../firewall/state';
import type { Family } from '../../net/ip';
import type { WireguardImplementation } from '../../model';
import type { BlockRoute } from '../../routing/routes';
import type { Dataplane, EndpointLink, RuleCounter, VxlanDevice, WireguardSettings } from '../dataplane';
import { familyOf, canonicalAddress, checkEndpointLink, vethTaken } from '../checks';
import { GATEWAY_DEVICE, ROUTE_PROTOCOL, VXLAN_DEVICE, isSluiceHostIfname, vxlanMac } from '../../firewall/names';
import * as ip from '../../net/ip';
import { CommandError, SpawnRunner, batchInput, batchLine, type CommandRunner } from './command-runner';
import { IptablesFirewall } from './firewall';
import { IpsetRestorer } from './ipset-restorer';
import { involvesVxlan, parseJson, planRoutes, type KernelFdbEntry, type KernelNeighbour, type KernelRoute } from './routes';
import { LinuxWireguard } from './wireguard';

/** Writes `value` to /proc/sys/`key`, e.g. ("net/ipv4/ip_forward", "1"). */
export type SysctlWriter = (key: string, value: string) => Promise<void>;

/**
 * Writes sysctls under /proc/sys; the net/ ones under `netDir` instead, since
 * a managed plugin has /proc/sys read-only and gets the host's net/ mounted
 * elsewhere (net/ sysctls follow the writer's network namespace).
 */
export function sysctlWriter(netDir = '/proc/sys/net'): SysctlWriter {
  return (key, value) => writeFile(key.startsWith('net/') ? `${netDir}/${key.slice('net/'.length)}` : `/proc/sys/${key}`, value);
}

export const writeProcSys: SysctlWriter = sysctlWriter();

interface KernelLink {
  ifname: string;
  mtu?: number;
  address?: string;
  linkinfo?: { info_data?: { id?: number; local?: string; port?: number; learning?: boolean } };
  addr_info?: { family?: string; local?: string; scope?: string }[];
}

export class LinuxDataplane implements Dataplane {
  /** IPv6's is hooked into ip6tables by its first apply: a host without IPv6 networks never touches ip6tables. */
  private readonly firewalls: Record<Family, IptablesFirewall>;
  private readonly wireguard: LinuxWireguard;
  /** Route and gateway syncs each read, diff and write; two at once would undo each other. */
  private readonly mutex = new KeyedMutex();
  /** Set once this process has turned IPv6 forwarding on (see forwardIpv6). */
  private ipv6Forwarding = false;

  /** Tests of parsing pass a scripted runner and sysctl writer; production uses the defaults. */
  constructor(
    private readonly runner: CommandRunner = new SpawnRunner(),
    private readonly writeSysctl: SysctlWriter = writeProcSys,
    /** A kernel without IPv6 (booted with ipv6.disable=1) has no ip6tables to fill, and no IPv6 to guard. */
    private readonly kernelHasIpv6: boolean = existsSync('/proc/net/if_inet6'),
    /**
     * Where a container's veth is made, during Docker's calls: the agent passes an ip session
     * (ip-session.ts), so it costs no process. Only that: a long route batch or a run of deletions
     * in one session would hold the next container's veth behind it.
     */
    private readonly vethRunner: CommandRunner = runner,
  ) {
    const ipset = new IpsetRestorer(runner);
    this.firewalls = { 4: new IptablesFirewall(runner, 4, ipset), 6: new IptablesFirewall(runner, 6, ipset) };
    this.wireguard = new LinuxWireguard(runner);
  }

  async init(): Promise<void> {
    await this.writeSysctl('net/ipv4/ip_forward', '1');
    // A bridge without ports, not a dummy: it holds addresses just as well, and
    // some kernels (the project's build VMs among them) have no dummy driver.
    await this.addLink(batchLine`link add ${GATEWAY_DEVICE} type bridge`, [batchLine`link set ${GATEWAY_DEVICE} up`]);
    await this.firewalls[4].ensureHooks();
  }

  async addEndpoint(link: EndpointLink): Promise<void> {
    const { hostIfname: host, containerIfname: container, mtu } = link;
    const v6 = checkEndpointLink(link);
    if (v6) await this.forwardIpv6();
    const lines = [
      batchLine`link add ${host} mtu ${mtu} type veth peer name ${container} mtu ${mtu} address ${link.mac}`,
      batchLine`link set ${host} mtu ${mtu} up`,
      batchLine`route replace ${link.address}/32 dev ${host} scope link proto ${ROUTE_PROTOCOL}`,
      // Until Docker has moved and configured the container's end, an ARP
      // request for it goes unanswered and the kernel waits a full second to
      // retry: a permanent entry lets the first packets through at once.
      batchLine`neigh replace ${link.address} lladdr ${link.mac} dev ${host} nud permanent`,
      ...(v6
        ? [
            batchLine`route replace ${v6.address}/128 dev ${host} proto ${ROUTE_PROTOCOL}`,
            batchLine`neigh replace ${v6.address} lladdr ${link.mac} dev ${host} nud permanent`,
            // IPv6 has no proxy ARP for whatever the host routes: proxy NDP answers for listed
            // addresses only. The gateway is held once, on the gateway device (syncGateways).
            batchLine`neigh replace proxy ${v6.gateway} dev ${host}`,
          ]
        : []),
    ];
    try {
      await this.vethRunner.run('ip', ['-batch', '-'], batchInput(lines));
    } catch (err) {
      throw linkExists(err) ? vethTaken(host) : err;
    }
    // The container has the pool's prefix length and ARPs for its peers and
    // the gateway; the host answers for them, at once (proxy_delay defaults
    // to a random wait of up to 0.8 s per broadcast request).
    await this.writeSysctl(`net/ipv4/conf/${host}/proxy_arp`, '1');
    await this.writeSysctl(`net/ipv4/neigh/${host}/proxy_delay`, '0');
    if (v6) {
      // The same for neighbour solicitations of the gateway; and the veth takes no router
      // advertisement from the container's side.
      await this.writeSysctl(`net/ipv6/conf/${host}/proxy_ndp`, '1');
      await this.writeSysctl(`net/ipv6/neigh/${host}/proxy_delay`, '0');
      await this.writeSysctl(`net/ipv6/conf/${host}/accept_ra`, '0');
    }
  }

  async removeEndpoint(hostIfname: string): Promise<void> {
    if (!isSluiceHostIfname(hostIfname)) throw new DataplaneError(`refusing to delete "${hostIfname}": not a Sluice interface`);
    try {
      // The peer, the routes, neighbour and proxy entries and the veth's sysctls go with it.
      // A process of its own, not the veth session: deletions then run side by side. Queued in one
      // process after a `docker rm -f` of 50 containers, half of them were still waiting when the
      // next container's veth was (an e2e test saw it), and that veth waited behind them.
      await this.runner.run('ip', ['link', 'del', 'dev', hostIfname]);
    } catch (err) {
      if (!(err instanceof CommandError && err.stderr.includes('Cannot find device'))) throw err;
    }
  }

  async listEndpoints(): Promise<string[]> {
    const links = parseJson<KernelLink>(await this.runner.run('ip', ['-j', 'link', 'show', 'type', 'veth']), 'ip link');
    return links.map((l) => l.ifname).filter(isSluiceHostIfname);
  }

  async syncGateways(gateways: string[]): Promise<void> {
    const want = new Set(gateways.map((g) => canonicalAddress(g, undefined, 'gateway')));
    await this.mutex.run('gateways', async () => {
      const shown = parseJson<KernelLink>(await this.runner.run('ip', ['-j', 'addr', 'show', 'dev', GATEWAY_DEVICE]), 'ip addr');
      // Not the device's own link-local address.
      const have = new Set(
        shown.flatMap((l) => l.addr_info ?? []).flatMap((a) => (a.scope !== 'link' && a.local !== undefined ? [a.local] : [])),
      );
      const host = (g: string): string => `${g}/${ip.bits(familyOf(g))}`;
      const lines = [
        // nodad: the device has no ports, no one else can hold the address, and until DAD is done it would not be usable.
        ...[...want].filter((g) => !have.has(g)).map((g) => batchLine`address add ${host(g)} dev ${GATEWAY_DEVICE}` + (familyOf(g) === 6 ? ' nodad' : '')),
        ...[...have].filter((g) => !want.has(g)).map((g) => batchLine`address del ${host(g)} dev ${GATEWAY_DEVICE}`),
      ];
      if (lines.length > 0) await this.ipBatch(lines);
    });
  }

  ensureVxlan(device: VxlanDevice): Promise<{ mac: string }> {
    return this.mutex.run('routes', async () => {
      const links = parseJson<KernelLink>(await this.runner.run('ip', ['-j', '-d', 'link', 'show', 'type', 'vxlan']), 'ip link');
      const existing = links.find((l) => l.ifname === VXLAN_DEVICE);
      const info = existing?.linkinfo?.info_data;
      if (
        existing?.address !== undefined &&
        info?.id === device.vni &&
        info.local === device.localIp &&
        info.port === device.port &&
        info.learning === false
      ) {
        await this.ipBatch([batchLine`link set ${VXLAN_DEVICE} mtu ${device.mtu} up`]);
        return { mac: existing.address };
      }
      // VNI, local address and port cannot be changed in place; the routes,
      // neighbours and FDB entries on the old device go with it (syncRoutes restores them).
      const mac = vxlanMac(device.vni, device.localIp);
      await this.ipBatch([
        ...(existing ? [batchLine`link del ${VXLAN_DEVICE}`] : []),
        batchLine`link add ${VXLAN_DEVICE} mtu ${device.mtu} address ${mac} type vxlan id ${device.vni} local ${device.localIp} dstport ${device.port} nolearning`,
        batchLine`link set ${VXLAN_DEVICE} up`,
      ]);
      return { mac };
    });
  }

  ensureWireguard(mtu: number): Promise<WireguardImplementation> {
    // Routes through the device go with it when it is re-created.
    return this.mutex.run('routes', () => this.wireguard.ensure(mtu));
  }

  syncWireguard(settings: WireguardSettings): Promise<void> {
    return this.wireguard.sync(settings);
  }

  removeWireguard(): Promise<void> {
    // Routes through the device go with it.
    return this.mutex.run('routes', () => this.wireguard.remove());
  }

  syncRoutes(routes: BlockRoute[]): Promise<void> {
    return this.mutex.run('routes', async () => {
      if (routes.some((r) => familyOf(r.block) === 6)) await this.forwardIpv6();
      // `table all`: without a table, `ip route` shows IPv4 only; with it, both families in one read.
      const current = parseJson<KernelRoute>(
        await this.runner.run('ip', ['-j', 'route', 'show', 'table', 'all', 'proto', String(ROUTE_PROTOCOL)]),
        'ip route',
      );
      const [neighbours, fdb] = involvesVxlan(current, routes)
        ? await Promise.all([
            this.runner
              .run('ip', ['-j', 'neigh', 'show', 'dev', VXLAN_DEVICE, 'nud', 'permanent'])
              .then((out) => parseJson<KernelNeighbour>(out, 'ip neigh')),
            this.runner
              .run('bridge', ['-j', 'fdb', 'show', 'dev', VXLAN_DEVICE])
              .then((out) => parseJson<KernelFdbEntry>(out, 'bridge fdb')),
          ])
        : [[], []];
      const plan = planRoutes({ routes: current, neighbours, fdb }, routes);
      if (plan.bridge.length > 0) await this.runner.run('bridge', ['-batch', '-'], batchInput(plan.bridge));
      if (plan.ip.length > 0) await this.ipBatch(plan.ip);
    });
  }

  applyFirewall(state: FirewallState, family: Family = 4): Promise<void> {
    if (family === 6 && !this.kernelHasIpv6) return Promise.resolve();
    return this.firewalls[family].apply(state);
  }

  applyFirewallChange(change: FirewallChange, family: Family = 4): Promise<void> {
    if (family === 6 && !this.kernelHasIpv6) return Promise.resolve();
    return this.firewalls[family].applyChange(change);
  }

  async verifyFirewall(): Promise<string[]> {
    // A family never applied checks nothing.
    const [v4, v6] = await Promise.all([this.firewalls[4].check(), this.firewalls[6].check()]);
    return [...v4, ...v6];
  }

  ruleCounters(): Promise<RuleCounter[]> {
    return this.firewalls[4].counters();
  }

  async isOnLink(ip: string): Promise<boolean> {
    return (await this.routeTo(ip)).gateway === undefined;
  }

  /** For one of this host's own addresses (the node IP), the MTU of the interface holding it, not of lo. */
  async mtuTowards(ip: string): Promise<number> {
    const route = await this.routeTo(ip);
    const links =
      route.type === 'local'
        ? parseJson<KernelLink>(await this.runner.run('ip', ['-j', '-4', 'address', 'show', 'to', `${ip}/32`]), 'ip address')
        : parseJson<KernelLink>(await this.runner.run('ip', ['-j', 'link', 'show', 'dev', route.dev]), 'ip link');
    const mtu = links[0]?.mtu;
    if (mtu === undefined) throw new DataplaneError(`no interface MTU found towards ${ip}`);
    return mtu;
  }

  private async routeTo(ip: string): Promise<KernelRoute & { dev: string }> {
    const [route] = parseJson<KernelRoute>(await this.runner.run('ip', ['-j', 'route', 'get', ip]), 'ip route get');
    if (route?.dev === undefined) throw new DataplaneError(`ip route get ${ip} named no device`);
    return { ...route, dev: route.dev };
  }

  /**
   * IPv6 forwarding, turned on with the first IPv6 endpoint or route, never in
   * init: with forwarding on, the kernel ignores router advertisements on every
   * interface with accept_ra=1, so a host taking its own IPv6 address or default
   * route from them would lose them. Docker's bridge driver does the same when
   * a network has --ipv6. Nothing turns it off again: other software may rely on it by then.
   */
  private async forwardIpv6(): Promise<void> {
    if (this.ipv6Forwarding) return;
    await this.writeSysctl('net/ipv6/conf/all/forwarding', '1');
    this.ipv6Forwarding = true;
  }

  private async ipBatch(lines: readonly string[]): Promise<void> {
    await this.runner.run('ip', ['-batch', '-'], batchInput(lines));
  }

  /**
   * `add` then `configure` in one batch; if the link exists already (a restart),
   * only `configure`. Costs a second batch only in that case.
   */
  private async addLink(add: string, configure: readonly string[]): Promise<void> {
    try {
      await this.ipBatch([add, ...configure]);
    } catch (err) {
      if (!linkExists(err)) throw err;
      await this.ipBatch(configure);
    }
  }
}

/** ip's answer to a `link add` (the batch's first line) of a name in use. */
function linkExists(err: unknown): boolean {
  return err instanceof CommandError && err.failedLine === 1 && err.stderr.includes('File exists');
}
