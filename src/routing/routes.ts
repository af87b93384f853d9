/**
 * Pure: which routes this host needs, from the blocks every node holds.
 * Own blocks get a blackhole (unused addresses are dropped here instead of
 * bouncing to the default route); other nodes' blocks go straight to the
 * node (host-gw) when it shares a link, else through VXLAN with the tunnel's
 * MTU on the route (containers may have the underlay's). A node whose
 * liveness lapsed keeps its routes: its containers may well still run, and
 * its blocks are only ever reclaimed after the grace period (agent/reclaim.ts).
 *
 * IPv6 blocks (a block's family is in its CIDR text) take the same choice,
 * with one difference: Linux cannot route IPv6 via an IPv4 next hop, so
 * host-gw needs the peer's IPv6 underlay address (`NodeRecord.ip6`). Without
 * one, the block goes through VXLAN over the IPv4 underlay if both ends have
 * a VXLAN device (this host has one iff its own record has a VTEP MAC), else
 * it gets no route.
 */
import type { BlockRecord, NodeRecord } from '../model';

/**
 * A route this host needs to reach a block held elsewhere, or to drop traffic to unused addresses of its own.
 * `block` is a CIDR of either family; every address in a route is of the block's family but `nodeIp` (the IPv4 underlay's).
 */
export type BlockRoute =
  | { kind: 'host-gw'; block: string; via: string }
  /** `mtu`: the tunnel's, so a container with the underlay's MTU gets told (frag-needed) to send less. */
  | { kind: 'vxlan'; block: string; nodeIp: string; vtepMac: string; mtu: number }
  | { kind: 'wireguard'; block: string }
  | { kind: 'blackhole'; block: string };

export type PeerMode = 'host-gw' | 'vxlan';

export function blockRoutes(
  me: string,
  blocks: Iterable<BlockRecord>,
  nodes: ReadonlyMap<string, NodeRecord>,
  modeTowards: (peer: NodeRecord) => PeerMode,
  tunnelMtu: number,
): BlockRoute[] {
  const routes: BlockRoute[] = [];
  const tunnels = nodes.get(me)?.vtepMac !== undefined;
  for (const block of blocks) {
    if (block.node === me) {
      routes.push({ kind: 'blackhole', block: block.block });
      continue;
    }
    const peer = nodes.get(block.node);
    if (!peer) continue; // decommissioned: nothing to route to
    const ipv6 = block.block.includes(':');
    const via = ipv6 ? peer.ip6 : peer.ip;
    const mode = modeTowards(peer);
    if (mode === 'host-gw' && via !== undefined) routes.push({ kind: 'host-gw', block: block.block, via });
    else if (peer.vtepMac && (mode === 'vxlan' || (ipv6 && tunnels))) {
      routes.push({ kind: 'vxlan', block: block.block, nodeIp: peer.ip, vtepMac: peer.vtepMac, mtu: tunnelMtu });
    }
  }
  return routes.sort((a, b) => a.block.localeCompare(b.block));
}
