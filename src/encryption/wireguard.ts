/**
 * Pure: what WireGuard between hosts needs, from the cluster view. Every
 * encrypted node publishes its public key and port in its record; a host with
 * `--encryption wireguard` makes each other encrypted node a peer whose
 * allowed IPs are exactly that node's blocks, and routes those blocks through
 * its WireGuard device instead of host-gw or VXLAN. WireGuard's cryptokey
 * routing then drops any packet a peer sends from outside its own blocks:
 * that is the anti-spoofing, with no firewall rule of its own.
 *
 * The mixed-cluster rule: encryption is all or nothing between two hosts. A
 * host never routes to a node whose encryption differs from its own: that
 * node's blocks get a blackhole route on both sides (so nothing leaks in the
 * clear through a default route either), and the agent says so loudly.
 */
import type { BlockRecord, NodeRecord } from '../model';
import type { BlockRoute } from '../routing/routes';

export interface WireguardPeer {
  publicKey: string;
  /** NODE_IP:PORT */
  endpoint: string;
  /** The peer's blocks: what it may send from and what is routed to it. */
  allowedIps: string[];
}

export type Encryption = 'none' | 'wireguard';

/**
 * Bytes WireGuard adds to every packet over an IPv4 underlay: outer IPv4 header
 * (20) + UDP (8) + WireGuard data header (type, receiver, counter: 16) +
 * Poly1305 tag (16). Over IPv6 it would be 80; Sluice's underlay is IPv4.
 */
export const WIREGUARD_OVERHEAD = 60;

/** The container MTU with WireGuard on a standard 1500-byte underlay. */
export const WIREGUARD_CONTAINER_MTU = 1500 - WIREGUARD_OVERHEAD;

/** The WireGuard device's MTU: what is left of the underlay's once the tunnel's headers are in. */
export function wireguardMtu(underlayMtu: number): number {
  return underlayMtu - WIREGUARD_OVERHEAD;
}

export function encryptionOf(node: NodeRecord): Encryption {
  return node.wireguard ? 'wireguard' : 'none';
}

/**
 * A node reclaimed and not back yet is gone as far as its peers are concerned:
 * its blocks are released or being released, so it is no peer any more.
 */
function gone(node: NodeRecord): boolean {
  return node.reclaimed !== undefined && node.reclaimed.fencedAt === undefined;
}

/** The other nodes whose encryption differs from `mine`: refused, with a blackhole for their blocks. */
export function mismatchedNodes(me: string, mine: Encryption, nodes: ReadonlyMap<string, NodeRecord>): NodeRecord[] {
  return [...nodes.values()].filter((n) => n.name !== me && !gone(n) && encryptionOf(n) !== mine).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * One peer per other encrypted node holding blocks, allowed exactly those
 * (sorted, so equal views give equal text). A node without blocks has nothing
 * to send or receive yet: no peer until it claims one.
 */
export function wireguardPeers(me: string, blocks: Iterable<BlockRecord>, nodes: ReadonlyMap<string, NodeRecord>): WireguardPeer[] {
  const blocksOf = new Map<string, string[]>();
  for (const block of blocks) blocksOf.set(block.node, [...(blocksOf.get(block.node) ?? []), block.block]);
  return [...nodes.values()].flatMap((n) => {
    const allowedIps = blocksOf.get(n.name);
    if (n.name === me || gone(n) || n.wireguard === undefined || allowedIps === undefined) return [];
    return [{ publicKey: n.wireguard.publicKey, endpoint: `${n.ip}:${n.wireguard.port}`, allowedIps: allowedIps.sort() }];
  }).sort((a, b) => a.publicKey.localeCompare(b.publicKey));
}

/**
 * The block routes as encryption changes them. With WireGuard, every other
 * node's block goes through the device if that node is an encrypted peer,
 * else into a blackhole: nothing ever leaves in the clear. Without, a block of
 * an encrypted node is blackholed; the rest is left as planned.
 */
export function encryptRoutes(
  me: string,
  mine: Encryption,
  planned: readonly BlockRoute[],
  blocks: Iterable<BlockRecord>,
  nodes: ReadonlyMap<string, NodeRecord>,
): BlockRoute[] {
  const routes = new Map(planned.map((r) => [r.block, r]));
  for (const { node, block } of blocks) {
    if (node === me) continue;
    const owner = nodes.get(node);
    const encryptedPeer = owner !== undefined && !gone(owner) && encryptionOf(owner) === 'wireguard';
    if (mine === 'wireguard') routes.set(block, encryptedPeer ? { kind: 'wireguard', block } : { kind: 'blackhole', block });
    else if (owner !== undefined && encryptionOf(owner) === 'wireguard') routes.set(block, { kind: 'blackhole', block });
  }
  return [...routes.values()].sort((a, b) => a.block.localeCompare(b.block));
}
