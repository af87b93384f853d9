/**
 * Pure: from what `ip -j route show table all proto 252`, `ip -j neigh show`
 * and `bridge -j fdb show` print, and the desired block routes, the `ip -batch`
 * and `bridge -batch` lines that make the kernel match, for both families in
 * one batch (`ip` takes the family from each address). Only block routes are
 * managed here; the /32 and /128 routes to local endpoints (also protocol 252,
 * on `sl…` veths) belong to addEndpoint/removeEndpoint.
 *
 * IPv6 blocks go through the same VXLAN device over the IPv4 underlay: the
 * next hop is the peer VTEP's link-local address (EUI-64 of its MAC, which the
 * peer's device holds anyway), mapped to that MAC by a permanent neighbour
 * entry; the FDB entry sending the MAC to the peer's node IP serves both.
 */
import { DataplaneError } from '../../errors';
import * as ip from '../../net/ip';
import type { BlockRoute } from '../../routing/routes';
import { ROUTE_PROTOCOL, VXLAN_DEVICE, WIREGUARD_DEVICE, isSluiceHostIfname } from '../../firewall/names';
import { batchLine } from './command-runner';
import { familyOf, routesByBlock } from '../checks';

/** The fields of `ip -j route` output used here. */
export interface KernelRoute {
  dst: string;
  /** Printed for routes outside the main table, which are not Sluice's. */
  table?: string;
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
  const wanted = routesByBlock(desired);
  const have = new Map<string, KernelRoute>();
  for (const route of current.routes) {
    if (route.table !== undefined && route.table !== 'main') continue;
    if (route.dev !== undefined && isSluiceHostIfname(route.dev)) continue; // an endpoint's /32 or /128
    have.set(route.dst.includes('/') ? route.dst : `${route.dst}/${ip.bits(familyOf(route.dst))}`, route);
  }

  const routeLines: string[] = [];
  for (const [block, route] of wanted) {
    const existing = have.get(block);
    if (existing === undefined || !sameRoute(block, existing, route)) routeLines.push(`route replace ${routeSpec(block, route)} proto ${ROUTE_PROTOCOL}`);
  }
  const routeDeletes = [...have.keys()].filter((block) => !wanted.has(block)).map((block) => batchLine`route del ${block} proto ${ROUTE_PROTOCOL}`);

  // One FDB entry per peer node, and one neighbour per peer and family, however many blocks it holds.
  const peers = new Map<string, string>();
  const nextHops = new Map<string, string>();
  for (const [block, route] of wanted) {
    if (route.kind !== 'vxlan') continue;
    const mac = route.vtepMac.toLowerCase();
    peers.set(route.nodeIp, mac);
    nextHops.set(vxlanNextHop(block, route), mac);
  }

  const neighbourAdds: string[] = [];
  const neighbourDeletes: string[] = [];
  const haveNeighbours = new Map(current.neighbours.map((n) => [n.dst, n.lladdr?.toLowerCase()]));
  for (const [nextHop, mac] of nextHops) {
    if (haveNeighbours.get(nextHop) !== mac) {
      neighbourAdds.push(batchLine`neigh replace ${nextHop} lladdr ${mac} dev ${VXLAN_DEVICE} nud permanent`);
    }
  }
  for (const nextHop of haveNeighbours.keys()) {
    if (!nextHops.has(nextHop)) neighbourDeletes.push(batchLine`neigh del ${nextHop} dev ${VXLAN_DEVICE}`);
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

/**
 * Where a VXLAN route points: for IPv4 the peer's node IP (Linux routes IPv6
 * only via an IPv6 next hop, so for IPv6 its VTEP's link-local address).
 */
function vxlanNextHop(block: string, route: Extract<BlockRoute, { kind: 'vxlan' }>): string {
  return familyOf(block) === 4 ? route.nodeIp : linkLocalOf(route.vtepMac);
}

/** The EUI-64 link-local address of a MAC (RFC 4291 appendix A), in the kernel's spelling. */
export function linkLocalOf(mac: string): string {
  const bytes = mac.split(':').map((byte) => parseInt(byte, 16));
  if (bytes.length !== 6 || bytes.some((byte) => !(byte >= 0 && byte <= 255))) throw new DataplaneError(`VTEP MAC "${mac}" is not a MAC address`);
  const [b0, b1, b2, b3, b4, b5] = bytes as [number, number, number, number, number, number];
  const eui64 = [b0 ^ 0x02, b1, b2, 0xff, 0xfe, b3, b4, b5].reduce((value, byte) => (value << 8n) | BigInt(byte), 0n);
  return ip.formatIp({ family: 6, value: (0xfe80n << 112n) | eui64 });
}

function routeSpec(block: string, route: BlockRoute): string {
  switch (route.kind) {
    case 'blackhole':
      return batchLine`blackhole ${block}`;
    case 'host-gw':
      return batchLine`${block} via ${route.via}`;
    case 'vxlan':
      // The neighbour entry maps the next hop to the peer's VTEP MAC. An IPv4 one (the peer's
      // node IP) is on no link of this host: onlink says to take it as is. A link-local one needs not.
      return familyOf(block) === 4
        ? batchLine`${block} via ${route.nodeIp} dev ${VXLAN_DEVICE} onlink mtu ${String(route.mtu)}`
        : batchLine`${block} via ${vxlanNextHop(block, route)} dev ${VXLAN_DEVICE} mtu ${String(route.mtu)}`;
    case 'wireguard':
      // The device picks the peer by destination (its allowed IPs): no next hop.
      return batchLine`${block} dev ${WIREGUARD_DEVICE}`;
  }
}

function sameRoute(block: string, existing: KernelRoute, route: BlockRoute): boolean {
  const type = existing.type ?? 'unicast';
  switch (route.kind) {
    case 'blackhole':
      return type === 'blackhole';
    case 'host-gw':
      return type === 'unicast' && existing.gateway === route.via && existing.dev !== VXLAN_DEVICE;
    case 'vxlan':
      return (
        type === 'unicast' &&
        existing.gateway === vxlanNextHop(block, route) &&
        existing.dev === VXLAN_DEVICE &&
        (familyOf(block) === 6 || (existing.flags ?? []).includes('onlink')) &&
        existing.metrics?.some((m) => m.mtu === route.mtu) === true
      );
    case 'wireguard':
      return type === 'unicast' && existing.gateway === undefined && existing.dev === WIREGUARD_DEVICE;
  }
}
