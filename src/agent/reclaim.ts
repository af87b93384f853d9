/**
 * Reclaiming dead nodes. A node whose liveness lapsed longer than the grace
 * period ago still holds blocks, addresses and endpoint records; every
 * surviving agent looks on a timer, and the store makes exactly one of them
 * win: the first step marks the node record `reclaimed` in a transaction
 * that requires `alive/<node>` absent and the record unchanged, and every
 * release after it requires the same (and each released key unchanged). A
 * node that comes back rewrites its record first (compare-and-swap), so any
 * step still to come fails; it then sees the mark, fences itself and notes
 * when in the mark (`fencedAt`).
 *
 * `sluice node rm` releases a node through the same steps.
 */
import type { BlockRecord, NodeRecord } from '../model';
import type { Held, Registry } from '../store/registry';
import type { ClusterView } from './view';

/** etcd allows 128 operations per transaction; each released key is one compare and one delete, and two compares guard them all. */
export const MAX_KEYS_PER_TRANSACTION = 100;

/** Pure: the nodes `me` may reclaim at `now`: dead longer than the grace period, and still holding something. */
export function reclaimable(
  view: Pick<ClusterView, 'nodes' | 'alive' | 'blocks' | 'endpoints'>,
  me: string,
  now: number,
  gracePeriodSeconds: number,
): NodeRecord[] {
  const holds = (name: string): boolean =>
    [...view.blocks.values()].some((b) => b.node === name) ||
    [...view.endpoints.values()].some((e) => e.node === name);
  return [...view.nodes.values()].filter(
    (node) => node.name !== me && !view.alive.has(node.name) && now - Date.parse(node.lastSeen) > gracePeriodSeconds * 1000 && holds(node.name),
  );
}

export interface Released {
  blocks: BlockRecord[];
  addresses: number;
  /** False if a step found the node back or something changed under it: what is left stays held. */
  complete: boolean;
}

/**
 * Releases everything `name` holds while it stays dead with its record at
 * `nodeRevision`: one transaction batch per block (addresses and endpoints
 * first, the block itself in the last transaction), then the rest.
 */
export async function releaseNode(registry: Registry, name: string, nodeRevision: number): Promise<Released> {
  const holdings = await registry.holdingsOf(name);
  const released: Released = { blocks: [], addresses: 0, complete: false };
  for (const { block, addresses, held } of holdings.blocks) {
    if (!(await releaseAll(registry, name, nodeRevision, held))) return released;
    released.blocks.push(block);
    released.addresses += addresses;
  }
  released.complete = await releaseAll(registry, name, nodeRevision, holdings.rest);
  return released;
}

async function releaseAll(registry: Registry, name: string, nodeRevision: number, held: Held[]): Promise<boolean> {
  for (let i = 0; i < held.length; i += MAX_KEYS_PER_TRANSACTION) {
    if (!(await registry.releaseWhileDead(name, nodeRevision, held.slice(i, i + MAX_KEYS_PER_TRANSACTION)))) return false;
  }
  return true;
}

/**
 * Reclaims `name` for agent `by`: marks it (unless a reclaim of this same
 * death already did, which this one then finishes) and releases what it
 * holds. Undefined if the node is back, or another agent marked it first.
 */
export async function reclaimNode(registry: Registry, name: string, by: string, now: number): Promise<Released | undefined> {
  const node = await registry.getNode(name);
  if (!node) return undefined;
  const { reclaimed, lastSeen } = node.record;
  // Not yet fenced: the node has not been back since, so this is the same death.
  if (reclaimed && reclaimed.fencedAt === undefined) return releaseNode(registry, name, node.modRevision);
  const marked: NodeRecord = { ...node.record, reclaimed: { at: new Date(now).toISOString(), by } };
  if (!(await registry.markReclaimed(marked, node.modRevision))) return undefined;
  const after = await registry.getNode(name);
  // Read back for the new revision; a record rewritten since (the node came back) is no longer ours to release.
  if (after?.record.lastSeen !== lastSeen || after.record.reclaimed?.at !== marked.reclaimed?.at) return undefined;
  return releaseNode(registry, name, after.modRevision);
}
