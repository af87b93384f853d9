/**
 * The control plane no container may open, whatever its policy says: the
 * store (whoever reaches etcd can rewrite every policy), the Docker API of
 * every host, and the agents' own listening ports. The compiler drops new
 * connections from sluice veths to these before any policy is consulted.
 */

/** dockerd's TCP API, plain (2375) and TLS (2376): closed on every node's address. */
export const DOCKER_API_PORTS: readonly number[] = [2375, 2376];

/** An IPv4 address and a TCP port on it, or (no port) every port and protocol of the address. */
export interface ProtectedDestination {
  address: string;
  port?: number;
}

/** Where the control plane is, from the agent's configuration. */
export interface ControlPlane {
  /** Every address of every store endpoint (`--store`), with its port. */
  store: ProtectedDestination[];
  /** What `--protect` adds. */
  extra: ProtectedDestination[];
  /** TCP ports every agent listens on (a metrics port goes here), closed on every node like Docker's. */
  agentPorts: number[];
}

/** What the compiler closes. */
export interface Protection {
  /** Closed wherever they are: forwarded to another host, or to this one. */
  destinations: ProtectedDestination[];
  /**
   * TCP ports closed on every address of this host: a service bound to
   * 0.0.0.0 answers on any of them, the containers' gateways included.
   */
  hostPorts: number[];
}

/** Nothing closed: for a compile that is about policy alone. */
export const NO_PROTECTION: Protection = { destinations: [], hostPorts: [] };

/**
 * The control plane of a cluster whose nodes have the addresses `nodeIps`,
 * seen from the node at `nodeIp`. Besides Docker's and the agents' ports, the
 * store's ports and those of `--protect` destinations on this host (its node
 * address or loopback) are closed on all of this host's addresses.
 */
export function protection(plane: ControlPlane, nodeIps: readonly string[], nodeIp: string): Protection {
  const nodePorts = [...DOCKER_API_PORTS, ...plane.agentPorts];
  const onThisHost = (d: ProtectedDestination): boolean => d.address === nodeIp || d.address.startsWith('127.');
  const portsHere = [...plane.store, ...plane.extra.filter(onThisHost)].flatMap((d) => (d.port === undefined ? [] : [d.port]));
  return {
    destinations: [...plane.store, ...plane.extra, ...[...new Set([...nodeIps, nodeIp])].flatMap((address) => nodePorts.map((port) => ({ address, port })))],
    hostPorts: [...new Set([...nodePorts, ...portsHere])].sort((a, b) => a - b),
  };
}
