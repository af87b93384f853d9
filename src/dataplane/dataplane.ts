/**
 * The kernel seam. The Linux implementation (`linux/`) batches every change
 * into one `ip -batch` per call, and a firewall change into one `ipset
 * restore` before and one after one `iptables-restore --noflush` per changed
 * table; the recording fake (`fake/`) keeps the same state in memory for
 * unit tests. Callers hand over desired state; the dataplane makes the kernel
 * match it and touches nothing it does not own (names prefixed `sl`/`SLUICE`,
 * routes with protocol `sluice`).
 */
import type { WireguardPeer } from '../encryption/wireguard';
import type { FirewallChange, FirewallState } from '../firewall/state';
import type { WireguardImplementation } from '../model';
import type { Family } from '../net/ip';
import type { BlockRoute } from '../routing/routes';

/** One container's plumbing on this host: a veth pair and a /32 route (and a /128 for a dual-stack one). */
export interface EndpointLink {
  /** Host-side veth name (derived from the endpoint ID, see names.ts). */
  hostIfname: string;
  /** Container-side veth name, handed to Docker in Join as SrcName. */
  containerIfname: string;
  /** The container's IPv4 address, without prefix length. */
  address: string;
  /** The container-side MAC: known up front, so the host never has to ARP for the container. */
  mac: string;
  mtu: number;
  /** A dual-stack container's IPv6 address, without prefix length; needs `gatewayV6`. */
  addressV6?: string;
  /** Its network's IPv6 gateway (e.g. fd00:96::1): the host answers neighbour solicitations for it on the veth. */
  gatewayV6?: string;
}

export interface VxlanDevice {
  vni: number;
  /** Underlay address this host sends VXLAN packets from. */
  localIp: string;
  port: number;
  mtu: number;
}

/** This host's side of WireGuard: the device and its settings besides the peers. */
export interface WireguardSettings {
  /** Base64 private key (mode 0600 on disk, never in the store). */
  privateKey: string;
  listenPort: number;
  peers: WireguardPeer[];
}

/** One of Sluice's filter rules with the kernel's counts: what metrics read, once per scrape. */
export interface RuleCounter {
  chain: string;
  /** The rule's comment: every rule Sluice writes has one saying what it is for. */
  comment: string;
  /** Where a matching packet goes: DROP, RETURN, MARK, a chain… */
  target: string;
  packets: number;
  bytes: number;
}

export interface Dataplane {
  /**
   * One-time host setup: IPv4 forwarding, the gateway device, hooks from built-in chains. Idempotent.
   * IPv6 forwarding is turned on only with the first IPv6 endpoint or route (see LinuxDataplane).
   */
  init(): Promise<void>;
  /**
   * Creates the veth pair, host side up with proxy ARP, and the /32 route to the address; with
   * `addressV6`, also the /128 route to it and proxy NDP for `gatewayV6`. A veth of that name
   * is another endpoint's (IDs sharing their first digits) or a leftover: refused with a
   * ConflictError, and left as it is.
   */
  addEndpoint(link: EndpointLink): Promise<void>;
  /** Deletes the veth pair and its routes; an absent link is not an error. */
  removeEndpoint(hostIfname: string): Promise<void>;
  /** Host-side names of every Sluice veth on this host. */
  listEndpoints(): Promise<string[]>;
  /** Makes the virtual gateway addresses this host answers exactly `gateways` (either family, no prefix). */
  syncGateways(gateways: string[]): Promise<void>;
  /** Creates or repairs the VXLAN device; returns its MAC address. */
  ensureVxlan(device: VxlanDevice): Promise<{ mac: string }>;
  /**
   * Creates or repairs the WireGuard device with `mtu`: kernel WireGuard if the
   * module is there, else a `wireguard-go` process. Says which one runs.
   */
  ensureWireguard(mtu: number): Promise<WireguardImplementation>;
  /** Makes the device's key, port and peers exactly `settings`; sessions of unchanged peers survive. */
  syncWireguard(settings: WireguardSettings): Promise<void>;
  /** Deletes the WireGuard device (a wireguard-go ends with it); an absent device is not an error. */
  removeWireguard(): Promise<void>;
  /** Makes the Sluice-owned routes (protocol sluice) of both families exactly `routes`. */
  syncRoutes(routes: BlockRoute[]): Promise<void>;
  /**
   * Makes Sluice's ipsets and chains of `family` exactly `state`, rewriting
   * only what changed: IPv4's in iptables with `sluice-` sets, IPv6's (named
   * by firewall/family.ts) in ip6tables with `sluice6` sets. Each family's
   * state is kept apart; applying one never touches the other's.
   */
  applyFirewall(state: FirewallState, family?: Family): Promise<void>;
  /**
   * Applies the difference from what the last apply left to the next state:
   * work in proportion to the change (a container starting elsewhere: one set
   * member). Rejects with a DataplaneError, changing nothing, when the
   * family's applied state is not known (none yet, a failed apply, damage
   * found by verifyFirewall): the caller then applies the full state.
   */
  applyFirewallChange(change: FirewallChange, family?: Family): Promise<void>;
  /**
   * Compares the kernel's Sluice chains, hooks and ipsets with what
   * applyFirewall last wrote, for every family applied, for a periodic check
   * against out-of-band changes (someone flushing a chain). Returns the
   * differences (IPv6's start with "IPv6"), empty if none; after any in a
   * family, its next applyFirewall re-reads the kernel and rewrites
   * everything Sluice owns there.
   */
  verifyFirewall(): Promise<string[]>;
  /** The packet and byte counts of every rule in Sluice's IPv4 filter chains, read in one go. */
  ruleCounters(): Promise<RuleCounter[]>;
  /** True if `ip` is reachable without a gateway (same link): host-gw works to it. */
  isOnLink(ip: string): Promise<boolean>;
  /** MTU of the interface this host uses to reach `ip`; for one of its own addresses, of the interface holding it. */
  mtuTowards(ip: string): Promise<number>;
}
