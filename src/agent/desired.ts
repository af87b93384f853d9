/**
 * Pure: what this host's kernel should hold, from the cluster view, this
 * node and how it reaches each peer: the gateway addresses of its networks
 * (and the resolver's), a route to every block, and the firewall compiler's
 * input. The applier (applier.ts) makes the kernel match.
 */
import type { Backend } from '../config';
import { blockRoutes, type BlockRoute, type PeerMode } from '../routing/routes';
import type { NodeRecord } from '../model';
import type { CompileInput } from '../policy/compile';
import { protection, type ControlPlane } from '../policy/protect';
import type { ClusterView } from './view';

export interface HostState {
  /** Sorted. */
  gateways: string[];
  routes: BlockRoute[];
  firewall: CompileInput;
}

export interface ThisHost {
  node: string;
  nodeIp: string;
  backend: Backend;
  controlPlane: ControlPlane;
  /** Where the resolver of container names serves, if it does. */
  dnsAddress?: string | undefined;
}

/** `peerModes`: by peer address, whether it shares a link with this host; only read with the `auto` backend. */
export function desiredState(view: ClusterView, host: ThisHost, peerModes: ReadonlyMap<string, PeerMode>): HostState {
  const gateways = [...view.networksOn(host.node)].flatMap((net) => {
    const network = view.networks.get(net);
    return network ? [network.gateway] : [];
  });
  // The resolver's address is held like a gateway: containers reach it through their gateway route.
  if (host.dnsAddress !== undefined) gateways.push(host.dnsAddress);
  const modeTowards = (peer: NodeRecord): PeerMode => (host.backend === 'auto' ? (peerModes.get(peer.ip) ?? 'vxlan') : host.backend);
  const nodeIps = [...view.nodes.values()].map((n) => n.ip);
  return {
    gateways: gateways.sort(),
    routes: blockRoutes(host.node, view.blocks.values(), view.nodes, modeTowards),
    firewall: {
      node: host.node,
      networks: [...view.networks.values()],
      endpoints: [...view.endpoints.values()],
      policies: [...view.policies.values()],
      protection: protection(host.controlPlane, nodeIps, host.nodeIp),
      ...(host.dnsAddress !== undefined && { dnsAddress: host.dnsAddress }),
    },
  };
}
