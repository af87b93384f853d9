/**
 * The kernel seam. The Linux implementation (`linux/`) batches every change
 * into one `ip -batch` per call, and a firewall change into one `ipset
 * restore` before and one after one `iptables-restore --noflush` per changed
 * table; the recording fake (`fake/`) keeps the same state in memory for
 * unit tests. Callers hand over desired state; the dataplane makes the kernel
 * match it and touches nothing it does not own (names prefixed `sl`/`SLUICE`,
 * routes with protocol `sluice`).
 */

/** One container's plumbing on this host: a veth pair and a /32 route. */
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
}

/** A route this host needs to reach a block held elsewhere, or to drop traffic to unused addresses of its own. */
export type BlockRoute =
  | { kind: 'host-gw'; block: string; via: string }
  /** `mtu`: the tunnel's, so a container with the underlay's MTU gets told (frag-needed) to send less. */
  | { kind: 'vxlan'; block: string; nodeIp: string; vtepMac: string; mtu: number }
  | { kind: 'blackhole'; block: string };

export interface VxlanDevice {
  vni: number;
  /** Underlay address this host sends VXLAN packets from. */
  localIp: string;
  port: number;
  mtu: number;
}

/**
 * hash:net,iface members are "CIDR,IFNAME"; matched as `src,src` (source, in-interface) or `dst,dst` (destination, out-interface).
 * hash:ip,port members are "IP,PROTO:PORT" (tcp or udp); matched as `dst,dst` (destination address and port).
 */
export type IpSetType = 'hash:ip' | 'hash:net' | 'hash:net,iface' | 'hash:ip,port';

export interface IpSet {
  name: string;
  type: IpSetType;
  members: string[];
}

/** A chain we own: its rules are iptables-restore argument strings without the `-A CHAIN` prefix. */
export interface Chain {
  name: string;
  rules: string[];
}

/**
 * Everything Sluice wants in iptables and ipset. Top-level chains
 * (SLUICE-FORWARD, SLUICE-INPUT in filter; SLUICE-DNAT, SLUICE-POSTROUTING in
 * nat) are hooked once from the built-in chains by the dataplane.
 */
export interface FirewallState {
  ipsets: IpSet[];
  filter: Chain[];
  nat: Chain[];
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
  /** One-time host setup: IP forwarding, the gateway dummy device, hooks from built-in chains. Idempotent. */
  init(): Promise<void>;
  /** Creates the veth pair, host side up with proxy ARP, and the /32 route to the address. Idempotent. */
  addEndpoint(link: EndpointLink): Promise<void>;
  /** Deletes the veth pair and its route; an absent link is not an error. */
  removeEndpoint(hostIfname: string): Promise<void>;
  /** Host-side names of every Sluice veth on this host. */
  listEndpoints(): Promise<string[]>;
  /** Makes the virtual gateway addresses this host answers exactly `gateways` (IPv4, no prefix). */
  syncGateways(gateways: string[]): Promise<void>;
  /** Creates or repairs the VXLAN device; returns its MAC address. */
  ensureVxlan(device: VxlanDevice): Promise<{ mac: string }>;
  /** Makes the Sluice-owned routes (protocol sluice) exactly `routes`. */
  syncRoutes(routes: BlockRoute[]): Promise<void>;
  /** Makes Sluice's ipsets and chains exactly `state`, rewriting only what changed. */
  applyFirewall(state: FirewallState): Promise<void>;
  /**
   * Compares the kernel's Sluice chains, hooks and ipsets with what
   * applyFirewall last wrote, for a periodic check against out-of-band
   * changes (someone flushing a chain). Returns the differences, empty if
   * none; after any, the next applyFirewall re-reads the kernel and rewrites
   * everything Sluice owns.
   */
  verifyFirewall(): Promise<string[]>;
  /** The packet and byte counts of every rule in Sluice's filter chains, read in one go. */
  ruleCounters(): Promise<RuleCounter[]>;
  /** True if `ip` is reachable without a gateway (same link): host-gw works to it. */
  isOnLink(ip: string): Promise<boolean>;
  /** MTU of the interface this host uses to reach `ip`; for one of its own addresses, of the interface holding it. */
  mtuTowards(ip: string): Promise<number>;
}
