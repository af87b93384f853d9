/**
 * Pure: what this host's kernel should hold, from the cluster view, this
 * node and how it reaches each peer: the gateway addresses of its networks
 * (and the resolver's), a route to every block, and the records the firewall
 * is compiled from. The applier (applier.ts) makes the kernel match.
 */
import type { Backend } from '../config';
import { blockRoutes, type BlockRoute, type PeerMode } from '../routing/routes';
import type { NodeRecord } from '../model';
import type { ClusterRecords } from '../policy/incremental';
import { protection, type ControlPlane, type Protection } from '../policy/protect';
import type { ClusterView } from './view';
import { cidrKey } from '../store/keys';

export interface HostRouting {
  /** Sorted. */
  gateways: string[];
  routes: BlockRoute[];
}

export interface HostState extends HostRouting {
  firewall: ClusterRecords;
}

export interface ThisHost {
  node: string;
  backend: Backend;
  /** What no container may reach (protection()): the same object while the nodes' addresses stay. */
  protection: Protection;
  /** Where the resolver of container names serves, if it does. */
  dnsAddress?: string | undefined;
  /** Of the routes into the VXLAN tunnel, so a container with the underlay's MTU is told to send less. */
  tunnelMtu: number;
  /** `--ipv6-outbound masquerade`: NAT66 for the containers' IPv6 leaving the cluster. */
  ipv6Masquerade?: boolean;
}

/**
 * The gateways and block routes. They depend on networks, nodes, blocks and Docker networks
 * alone: a container starting anywhere changes neither. `peerModes`: by peer address, whether it
 * shares a link with this host; only read with the `auto` backend.
 */
export function hostRouting(view: ClusterView, host: ThisHost, peerModes: ReadonlyMap<string, PeerMode>): HostRouting {
  const gateways = [...view.networksOn(host.node)].flatMap((net) => {
    const network = view.networks.get(net);
    const ipv6Subnet = network?.settings?.ipv6Subnet;
    const pool6 = ipv6Subnet === undefined ? undefined : view.ipv6Pools.get(cidrKey(ipv6Subnet));
    return network ? [network.gateway, ...(pool6 ? [pool6.gateway] : [])] : [];
  });
  // The resolver's address is held like a gateway: containers reach it through their gateway route.
  if (host.dnsAddress !== undefined) gateways.push(host.dnsAddress);
  const modeTowards = (peer: NodeRecord): PeerMode => (host.backend === 'auto' ? (peerModes.get(peer.ip) ?? 'vxlan') : host.backend);
  return { gateways: gateways.sort(), routes: blockRoutes(host.node, view.blocks.values(), view.nodes, modeTowards, host.tunnelMtu) };
}

/** What the firewall is compiled from: the view's own maps, whose unchanged records keep their identity. */
export function firewallRecords(view: ClusterView, host: ThisHost): ClusterRecords {
  return {
    networks: view.networks,
    endpoints: view.endpoints,
    policies: view.policies,
    protection: host.protection,
    ...(host.dnsAddress !== undefined && { dnsAddress: host.dnsAddress }),
    ...(host.ipv6Masquerade === true && { ipv6Masquerade: true }),
  };
}

/** protection() for the nodes' current addresses, computed again only when they change. */
export class NodeProtection {
  private addresses: string | undefined;
  private protection: Protection | undefined;

  constructor(
    private readonly plane: ControlPlane,
    private readonly nodeIp: string,
  ) {}

  of(nodes: Iterable<NodeRecord>): Protection {
    // Docker's API and the agents' ports answer on a node's IPv6 address too.
    const ips = [...nodes].flatMap((n) => (n.ip6 === undefined ? [n.ip] : [n.ip, n.ip6]));
    const addresses = ips.join(',');
    if (this.protection === undefined || addresses !== this.addresses) {
      this.protection = protection(this.plane, ips, this.nodeIp);
      this.addresses = addresses;
    }
    return this.protection;
  }
}
