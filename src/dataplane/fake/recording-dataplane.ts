/**
 * An in-memory Dataplane for unit tests of the driver and the agent: it holds
 * the state a host would (endpoints, gateways, routes, the VXLAN device, the
 * firewall), accepts and rejects input as the Linux one does, and records
 * every call. Failures are injected per method (Felix's mocknetlink idea):
 *
 *   const dp = new RecordingDataplane();
 *   dp.failNext('addEndpoint');
 *   await expect(driver.join(req)).rejects.toThrow(DataplaneError);
 *   expect(dp.endpoints.size).toBe(0);
 */
import { DataplaneError } from '../../errors';
import { vethTaken } from '../checks';
import { WIREGUARD_KEY } from '../../encryption/keys';
import { isSluiceHostIfname, vxlanMac } from '../../firewall/names';
import { ruleTarget } from '../../firewall/rule';
import {
  TABLES,
  applyNormalChange,
  byName,
  insertMember,
  normalizeChange,
  normalizeFirewall,
  sortMembers,
  type FirewallChange,
  type FirewallState,
  type NormalFirewall,
} from '../../firewall/state';
import type { WireguardImplementation } from '../../model';
import type { Family } from '../../net/ip';
import type { BlockRoute } from '../../routing/routes';
import type { Dataplane, EndpointLink, RuleCounter, VxlanDevice, WireguardSettings } from '../dataplane';
import { canonicalAddress, checkEndpointLink, familyOf, routesByBlock } from '../checks';

export type DataplaneMethod = keyof Dataplane;

export interface RecordedCall {
  method: DataplaneMethod;
  /** Deep copies, so later mutation by the caller does not rewrite history. */
  args: unknown[];
}

export interface RecordingDataplaneOptions {
  /** Addresses isOnLink() reports as on-link; everything else needs a gateway. */
  onLink?: Iterable<string>;
  /** What mtuTowards() reports for every address. */
  mtu?: number;
  /** What ensureWireguard() finds available (default: the kernel module). */
  wireguard?: WireguardImplementation;
}

export class RecordingDataplane implements Dataplane {
  readonly calls: RecordedCall[] = [];
  initialized = false;
  /** Turned on, as on Linux, by the first IPv6 endpoint or route, never by init. */
  ipv6Forwarding = false;
  /** By host-side interface name. */
  readonly endpoints = new Map<string, EndpointLink>();
  readonly gateways = new Set<string>();
  /** By block, in canonical CIDR form. */
  readonly routes = new Map<string, BlockRoute>();
  vxlan: (VxlanDevice & { mac: string }) | undefined;
  wireguardDevice: { implementation: WireguardImplementation; mtu: number } | undefined;
  /** The last settings syncWireguard accepted. */
  wireguard: WireguardSettings | undefined;
  /** Per family, the state the last applyFirewall and the changes after it made: sets and chains by name, members in set order. */
  readonly firewalls: Record<Family, FirewallState> = { 4: emptyFirewall(), 6: emptyFirewall() };
  /** Per family, what a change is checked against, as in the Linux dataplane; undefined when a change must be refused. */
  private readonly applied: Record<Family, NormalFirewall | undefined> = { 4: undefined, 6: undefined };

  private readonly onLink: Set<string>;
  private readonly mtu: number;
  private readonly wireguardImplementation: WireguardImplementation;
  private readonly failures = new Map<DataplaneMethod, Error[]>();
  private readonly firewallDamage: Record<Family, string | undefined> = { 4: undefined, 6: undefined };
  /** Packets "seen" by rule comment (see countPackets). */
  private readonly packets = new Map<string, number>();

  constructor(options: RecordingDataplaneOptions = {}) {
    this.onLink = new Set(options.onLink);
    this.mtu = options.mtu ?? 1500;
    this.wireguardImplementation = options.wireguard ?? 'kernel';
  }

  /** Makes the next call to `method` reject with `error` and change nothing. Calls queue up. */
  failNext(method: DataplaneMethod, error: Error = new DataplaneError(`injected failure in ${method}`)): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), error]);
  }

  /** IPv4's firewall: what most tests look at. */
  get firewall(): FirewallState {
    return this.firewalls[4];
  }

  /** Simulates someone flushing Sluice's chains of `family`: verifyFirewall reports it until that family's applyFirewall rewrites. */
  damageFirewall(description = 'filter chain SLUICE-FORWARD was flushed out of band', family: Family = 4): void {
    this.firewallDamage[family] = description;
  }

  /** Simulates traffic: the first filter rule commented `comment` counts `packets` more packets, of 100 bytes each. */
  countPackets(comment: string, packets: number): void {
    this.packets.set(comment, (this.packets.get(comment) ?? 0) + packets);
  }

  /** The arguments of every call to `method`, oldest first. */
  callsTo(method: DataplaneMethod): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  init(): Promise<void> {
    return this.call('init', [], () => {
      this.initialized = true;
    });
  }

  addEndpoint(link: EndpointLink): Promise<void> {
    return this.call('addEndpoint', [link], () => {
      if (this.endpoints.has(link.hostIfname)) throw vethTaken(link.hostIfname);
      if (checkEndpointLink(link)) this.ipv6Forwarding = true;
      this.endpoints.set(link.hostIfname, { ...link });
    });
  }

  removeEndpoint(hostIfname: string): Promise<void> {
    return this.call('removeEndpoint', [hostIfname], () => {
      if (!isSluiceHostIfname(hostIfname)) throw new DataplaneError(`refusing to delete "${hostIfname}": not a Sluice interface`);
      this.endpoints.delete(hostIfname);
    });
  }

  listEndpoints(): Promise<string[]> {
    return this.call('listEndpoints', [], () => [...this.endpoints.keys()].sort());
  }

  syncGateways(gateways: string[]): Promise<void> {
    return this.call('syncGateways', [gateways], () => {
      const next = gateways.map((g) => canonicalAddress(g, undefined, 'gateway'));
      this.gateways.clear();
      for (const gateway of next) this.gateways.add(gateway);
    });
  }

  ensureVxlan(device: VxlanDevice): Promise<{ mac: string }> {
    return this.call('ensureVxlan', [device], () => {
      const existing = this.vxlan;
      const same = existing?.vni === device.vni && existing.localIp === device.localIp && existing.port === device.port;
      if (existing !== undefined && same) {
        this.vxlan = { ...device, mac: existing.mac };
        return { mac: existing.mac };
      }
      // Re-creating the device takes the routes through it along, as in the kernel.
      if (existing !== undefined) for (const [block, route] of this.routes) if (route.kind === 'vxlan') this.routes.delete(block);
      const mac = vxlanMac(device.vni, device.localIp);
      this.vxlan = { ...device, mac };
      return { mac };
    });
  }

  ensureWireguard(mtu: number): Promise<WireguardImplementation> {
    return this.call('ensureWireguard', [mtu], () => {
      this.wireguardDevice = { implementation: this.wireguardImplementation, mtu };
      return this.wireguardImplementation;
    });
  }

  syncWireguard(settings: WireguardSettings): Promise<void> {
    return this.call('syncWireguard', [settings], () => {
      if (this.wireguardDevice === undefined) throw new DataplaneError('WireGuard settings without the device: call ensureWireguard first');
      const keys = [settings.privateKey, ...settings.peers.map((p) => p.publicKey)];
      if (!keys.every((key) => WIREGUARD_KEY.test(key))) throw new DataplaneError('refusing a WireGuard key that is not base64 of 32 bytes');
      this.wireguard = structuredClone(settings);
    });
  }

  removeWireguard(): Promise<void> {
    return this.call('removeWireguard', [], () => {
      this.wireguardDevice = undefined;
      this.wireguard = undefined;
      for (const [block, route] of this.routes) if (route.kind === 'wireguard') this.routes.delete(block);
    });
  }

  syncRoutes(routes: BlockRoute[]): Promise<void> {
    return this.call('syncRoutes', [routes], () => {
      if (this.vxlan === undefined && routes.some((r) => r.kind === 'vxlan')) {
        throw new DataplaneError('vxlan route without the VXLAN device: call ensureVxlan first');
      }
      if (this.wireguardDevice === undefined && routes.some((r) => r.kind === 'wireguard')) {
        throw new DataplaneError('wireguard route without the WireGuard device: call ensureWireguard first');
      }
      const next = routesByBlock(routes);
      if (routes.some((r) => familyOf(r.block) === 6)) this.ipv6Forwarding = true;
      this.routes.clear();
      for (const [block, route] of next) this.routes.set(block, route);
    });
  }

  applyFirewall(state: FirewallState, family: Family = 4): Promise<void> {
    return this.firewallCall('applyFirewall', state, family, () => {
      this.applied[family] = normalizeFirewall(state, family);
      this.firewalls[family] = structuredClone(state);
      this.firewallDamage[family] = undefined;
    });
  }

  applyFirewallChange(change: FirewallChange, family: Family = 4): Promise<void> {
    return this.firewallCall('applyFirewallChange', change, family, () => {
      const applied = this.applied[family];
      if (applied === undefined) throw new DataplaneError('no firewall state applied to change; apply the full state');
      const normal = normalizeChange(applied, change, family);
      applyNormalChange(applied, normal);
      const state = this.firewalls[family];
      if (change.createdSets.length + change.destroyedSets.length > 0) {
        const destroyed = new Set(change.destroyedSets);
        const created = change.createdSets.map((set) => ({ ...set, members: sortMembers(set.members) }));
        state.ipsets = byName([...state.ipsets.filter((set) => !destroyed.has(set.name)), ...created]);
      }
      if (change.members.length > 0) {
        const sets = new Map(state.ipsets.map((set) => [set.name, set]));
        for (const { name, add, remove } of change.members) {
          const set = sets.get(name)!;
          const removed = new Set(remove);
          if (removed.size > 0) set.members = set.members.filter((m) => !removed.has(m));
          for (const member of add) insertMember(set.members, member);
        }
      }
      for (const table of TABLES) {
        const removed = new Set(change.removedChains.filter((c) => c.table === table).map((c) => c.name));
        const replaced = change.chains.filter((c) => c.table === table).map(({ chain }) => structuredClone(chain));
        if (removed.size + replaced.length === 0) continue;
        const names = new Set(replaced.map((chain) => chain.name));
        state[table] = byName([...state[table].filter((chain) => !removed.has(chain.name) && !names.has(chain.name)), ...replaced]);
      }
    });
  }

  verifyFirewall(): Promise<string[]> {
    return this.call('verifyFirewall', [], () =>
      FAMILIES.flatMap((family) => {
        // Like the Linux one: reported once, then the family's next apply rewrites, and no change applies before it.
        const damage = this.firewallDamage[family];
        this.firewallDamage[family] = undefined;
        if (damage === undefined) return [];
        this.applied[family] = undefined;
        return [damage];
      }),
    );
  }

  ruleCounters(): Promise<RuleCounter[]> {
    return this.call('ruleCounters', [], () => {
      const counted = new Set<string>();
      return this.firewalls[4].filter.flatMap(({ name, rules }) =>
        rules.map((rule): RuleCounter => {
          const comment = rule.comment;
          const packets = counted.has(comment) ? 0 : (this.packets.get(comment) ?? 0);
          counted.add(comment);
          return { chain: name, comment, target: ruleTarget(rule.action), packets, bytes: packets * 100 };
        }),
      );
    });
  }

  isOnLink(ip: string): Promise<boolean> {
    return this.call('isOnLink', [ip], () => this.onLink.has(ip));
  }

  mtuTowards(ip: string): Promise<number> {
    return this.call('mtuTowards', [ip], () => this.mtu);
  }

  private firewallCall(method: 'applyFirewall' | 'applyFirewallChange', input: unknown, family: Family, work: () => void): Promise<void> {
    // A failed firewall write leaves the kernel unknown to the Linux dataplane: the family's next change is refused there too.
    return this.call(method, [input, family], work, () => {
      this.applied[family] = undefined;
    });
  }

  private call<T>(method: DataplaneMethod, args: unknown[], work: () => T, onFailure?: () => void): Promise<T> {
    this.calls.push({ method, args: structuredClone(args) });
    const failure = this.failures.get(method)?.shift();
    if (failure !== undefined) {
      onFailure?.();
      return Promise.reject(failure);
    }
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

const FAMILIES: readonly Family[] = [4, 6];

function emptyFirewall(): FirewallState {
  return { ipsets: [], filter: [], nat: [] };
}
