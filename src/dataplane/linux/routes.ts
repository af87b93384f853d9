/**
 * Pure: from what `ip -j route show proto 252`, `ip -j neigh show` and
 * `bridge -j fdb show` print, and the desired block routes, the `ip -batch`
 * and `bridge -batch` lines that make the kernel match. Only block routes are
 * managed here; the /32 routes to local endpoints (also protocol 252, on `sl…`
 * veths) belong to addEndpoint/removeEndpoint.
 */
import { DataplaneError } from '../../errors';
import { formatCidr, parseCidr } from '../../net/ipv4';
import type { BlockRoute } from '../../routing/routes';
import { ROUTE_PROTOCOL, VXLAN_DEVICE, WIREGUARD_DEVICE, isSluiceHostIfname } from '../../firewall/names';
import { batchLine } from './command-runner';

/** The fields of `ip -j route` output used here. */
export interface KernelRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  metrics?: { mtu?: number }[];
}

export interface KernelNeighbour {
  dst: string;
  lladdr?: string;
}

export interface KernelFdbEntry {
  mac: string;
  dst?: string;
}

export interface RoutePlan {
  /** For `bridge -batch -`: stale FDB entries first, so a replace never collides with one. */
  bridge: string[];
  /** For `ip -batch -`: neighbours before the routes that use them; deletions last. */
  ip: string[];
}

export function parseJson<T>(text: string, what: string): T[] {
  try {
    // `ip -j` prints nothing at all (not "[]") for some empty listings.
    return text.trim() === '' ? [] : (JSON.parse(text) as T[]);
  } catch {
    throw new DataplaneError(`cannot parse ${what} output as JSON: ${text.slice(0, 200)}`);
  }
}

/** True if a route has to be compared against the neighbour and FDB tables of the VXLAN device. */
export function involvesVxlan(current: readonly KernelRoute[], desired: readonly BlockRoute[]): boolean {
  return desired.some((r) => r.kind === 'vxlan') || current.some((r) => r.dev === VXLAN_DEVICE);
}

export function planRoutes(
  current: { routes: readonly KernelRoute[]; neighbours: readonly KernelNeighbour[]; fdb: readonly KernelFdbEntry[] },
  desired: readonly BlockRoute[],
): RoutePlan {
  const wanted = new Map<string, BlockRoute>();
  for (const route of desired) wanted.set(canonicalBlock(route.block), route);
  const have = new Map<string, KernelRoute>();
  for (const route of current.routes) {
    if (route.dev !== undefined && isSluiceHostIfname(route.dev)) continue; // an endpoint's /32
    have.set(route.dst.includes('/') ? route.dst : `${route.dst}/32`, route);
  }

  const routeLines: string[] = [];
  for (const [block, route] of wanted) {
    const existing = have.get(block);
    if (existing === undefined || !sameRoute(existing, route)) routeLines.push(`route replace ${routeSpec(block, route)} proto ${ROUTE_PROTOCOL}`);
  }
  const routeDeletes = [...have.keys()].filter((block) => !wanted.has(block)).map((block) => batchLine`route del ${block} proto ${ROUTE_PROTOCOL}`);

  // One neighbour and one FDB entry per peer node, however many blocks it holds.
  const peers = new Map<string, string>();
  for (const route of wanted.values()) if (route.kind === 'vxlan') peers.set(route.nodeIp, route.vtepMac.toLowerCase());

  const neighbourAdds: string[] = [];
  const neighbourDeletes: string[] = [];
  const haveNeighbours = new Map(current.neighbours.map((n) => [n.dst, n.lladdr?.toLowerCase()]));
  for (const [nodeIp, mac] of peers) {
    if (haveNeighbours.get(nodeIp) !== mac) {
      neighbourAdds.push(batchLine`neigh replace ${nodeIp} lladdr ${mac} dev ${VXLAN_DEVICE} nud permanent`);
    }
  }
  for (const nodeIp of haveNeighbours.keys()) {
    if (!peers.has(nodeIp)) neighbourDeletes.push(batchLine`neigh del ${nodeIp} dev ${VXLAN_DEVICE}`);
  }

  const bridge: string[] = [];
  const fdbAdds: string[] = [];
  const remotes = current.fdb.filter((entry): entry is Required<KernelFdbEntry> => entry.dst !== undefined);
  for (const entry of remotes) {
    if (peers.get(entry.dst) !== entry.mac.toLowerCase()) bridge.push(batchLine`fdb del ${entry.mac} dev ${VXLAN_DEVICE} dst ${entry.dst} self`);
  }
  for (const [nodeIp, mac] of peers) {
    if (!remotes.some((entry) => entry.dst === nodeIp && entry.mac.toLowerCase() === mac)) {
      fdbAdds.push(batchLine`fdb replace ${mac} dev ${VXLAN_DEVICE} dst ${nodeIp} self permanent`);
    }
  }
  bridge.push(...fdbAdds);

  return { bridge, ip: [...neighbourAdds, ...routeLines, ...routeDeletes, ...neighbourDeletes] };
}

function canonicalBlock(block: string): string {
  const cidr = parseCidr(block);
  if (cidr === undefined) throw new DataplaneError(`route block "${block}" is not an IPv4 CIDR`);
  return formatCidr(cidr);
}

function routeSpec(block: string, route: BlockRoute): string {
  switch (route.kind) {
    case 'blackhole':
      return batchLine`blackhole ${block}`;
    case 'host-gw':
      return batchLine`${block} via ${route.via}`;
    case 'vxlan':
      // The peer's node IP doubles as the next hop: the neighbour entry maps it to the peer's VTEP MAC.
      return batchLine`${block} via ${route.nodeIp} dev ${VXLAN_DEVICE} onlink mtu ${String(route.mtu)}`;
    case 'wireguard':
      // The device picks the peer by destination (its allowed IPs): no next hop.
      return batchLine`${block} dev ${WIREGUARD_DEVICE}`;
  }
}

function sameRoute(existing: KernelRoute, route: BlockRoute): boolean {
  const type = existing.type ?? 'unicast';
  switch (route.kind) {
    case 'blackhole':
      return type === 'blackhole';
    case 'host-gw':
      return type === 'unicast' && existing.gateway === route.via && existing.dev !== VXLAN_DEVICE;
    case 'vxlan':
      return (
        type === 'unicast' &&
        existing.gateway === route.nodeIp &&
        existing.dev === VXLAN_DEVICE &&
        (existing.flags ?? []).includes('onlink') &&
        existing.metrics?.some((m) => m.mtu === route.mtu) === true
      );
    case 'wireguard':
      return type === 'unicast' && existing.gateway === undefined && existing.dev === WIREGUARD_DEVICE;
  }
}
