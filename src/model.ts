/** Domain types shared by the driver, the agent, the policy compiler and the CLI. */

/** A node's name: a hostname's characters, so it is safe in store keys and messages. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Docker's rule for network names. */
export const DOCKER_NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export type Labels = Record<string, string>;

export type Protocol = 'tcp' | 'udp' | 'sctp';

/** A `docker run -p` mapping, as Docker sends it in Join/ProgramExternalConnectivity options. */
export interface PortMapping {
  proto: Protocol;
  containerPort: number;
  /** Host address to bind, or undefined for every address of the host. */
  hostIp?: string;
  hostPort: number;
  hostPortEnd: number;
}

/** A cluster network: identified by its subnet, the same on every host. */
export interface NetworkRecord {
  /** Store key of the network: the subnet with '/' as '-', e.g. "10.96.0.0-16". */
  key: string;
  subnet: string;
  /** Prefix length of the blocks hosts claim, e.g. 26. */
  blockSize: number;
  /** Virtual gateway, the same address on every host. */
  gateway: string;
  /** Docker network name, when known (set by `sluice network create` or learned from Docker). */
  name?: string;
  /** Defined with `sluice network create`: every agent creates it in Docker, and it outlives `docker network rm`. */
  managed?: boolean;
  /** `--ip-range` (CIDR): IPAM hands out only these addresses (`--ip` and `--aux-address` may be anywhere in the subnet). */
  ipRange?: string;
  /** What the first `docker network create` asked for; every other host's create must ask the same. */
  settings?: NetworkSettings;
}

/** An interface MTU Linux accepts for IPv4: 68 (RFC 791) to the largest a veth takes. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

/** The `docker network create` options that must agree on every host. */
export interface NetworkSettings {
  /** `--internal`: containers reach each other, nothing outside (no default route, masquerade or published port). */
  internal: boolean;
  /** `-o com.docker.network.driver.mtu=N`; undefined: the agent's MTU. */
  mtu?: number;
  /** `--aux-address NAME=IP`: reserved in the whole cluster, never handed out. */
  auxAddresses: Record<string, string>;
  /**
   * `--ipv6 --subnet <IPv6 CIDR>`: the network's IPv6 pool, canonical. Its
   * NetworkRecord (blocks, gateway) is the one keyed by this subnet.
   */
  ipv6Subnet?: string;
}

/** What a block claim records: who holds it. */
export interface BlockRecord {
  network: string;
  block: string;
  node: string;
}

/** What an address claim records, so a leak can be traced to its holder. */
export interface AddressRecord {
  network: string;
  address: string;
  node: string;
  kind: 'endpoint' | 'gateway' | 'aux';
  /** Docker endpoint ID once the endpoint's Join records it. */
  endpointId?: string;
  containerId?: string;
}

/** An endpoint as every host sees it in the store. */
export interface EndpointRecord {
  id: string;
  /** Network key (see NetworkRecord.key). */
  network: string;
  node: string;
  address: string;
  /** On a dual-stack network: the IPv6 address, canonical (RFC 5952), no prefix. */
  addressV6?: string;
  /** Host-side veth name on the owning node. */
  hostIfname: string;
  containerId?: string;
  containerName?: string;
  /** Other names of the container on this network (`--network-alias`, compose service names). */
  aliases?: string[];
  /** Docker labels of the container; null until learned (the endpoint is then fail-closed). */
  labels: Labels | null;
  ports: PortMapping[];
}

/** A node (host running an agent) as registered in the store. */
export interface NodeRecord {
  name: string;
  ip: string;
  /** The node's IPv6 underlay address, if it has one: the next hop of IPv6 host-gw routes. */
  ip6?: string;
  backend: 'host-gw' | 'vxlan' | 'auto';
  vtepMac?: string;
  /** Set with `--encryption wireguard`: how peers reach this node's WireGuard device. */
  wireguard?: WireguardNode;
  version: string;
  /** When the agent last said it was alive (ISO time): decides when its blocks may be reclaimed. */
  lastSeen: string;
  /** Reported with liveness, for `sluice status`: when the kernel last took the desired state (ISO time). */
  lastApply?: string;
  /** Reported with liveness: the agent's latest failure of kernel or periodic work, if any since it started. */
  lastError?: { at: string; message: string };
  /**
   * Set when surviving agents released the node's blocks, addresses and endpoints after
   * it was dead past the grace period. Kept when the node comes back: it is then fenced,
   * its containers from before have lost their addresses (and their network).
   */
  reclaimed?: Reclaim;
}

/** Kernel WireGuard, or the userspace `wireguard-go` where the kernel has no module. */
export type WireguardImplementation = 'kernel' | 'wireguard-go';

export interface WireguardNode {
  /** Base64 Curve25519 public key; the private key never leaves the host. */
  publicKey: string;
  /** UDP port on the node IP. */
  port: number;
  implementation: WireguardImplementation;
}

export interface Reclaim {
  /** ISO time of the reclaim. */
  at: string;
  /** The node whose agent reclaimed it. */
  by: string;
  /** ISO time the node came back and fenced itself; until then the reclaim may still be under way. */
  fencedAt?: string;
}
