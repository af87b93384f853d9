/**
 * The node's liveness: its record (what `sluice status` shows of it) and its
 * alive key under a lease, fencing when the node finds it was reclaimed
 * while away, and reclaiming the nodes dead past the grace period.
 */
import type { AgentConfig } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import { isSluiceHostIfname } from '../firewall/names';
import type { NodeRecord, Reclaim, WireguardNode } from '../model';
import { keys } from '../store/keys';
import type { Registry } from '../store/registry';
import type { Lease } from '../store/store';
import type { Clock } from '../util/clock';
import { recordedVeths } from './reconcile';
import { reclaimNode, reclaimable } from './reclaim';
import type { Reporter } from './reporter';
import type { ClusterView } from './view';

export const VERSION = '0.1.0';
const LIVENESS_TTL_SECONDS = 30;

export class Liveness {
  /** The VXLAN device's MAC, once it exists: peers route to it. */
  vtepMac: string | undefined;
  /** How peers reach this host's WireGuard device, once it is up. */
  wireguard: WireguardNode | undefined;
  /** When the kernel last took the desired state, for `sluice status`. */
  lastApply: string | undefined;
  /** This node was reclaimed while away; set until its stale veths are gone. */
  private pendingFence: Reclaim | undefined;
  private lease: Lease | undefined;
  private stopped = false;

  constructor(
    private readonly config: Pick<AgentConfig, 'node' | 'nodeIp' | 'nodeIp6' | 'backend' | 'gracePeriod'>,
    private readonly registry: Registry,
    private readonly dataplane: Dataplane,
    private readonly clock: Clock,
    private readonly reporter: Reporter,
  ) {}

  /**
   * Writes this node's record (compare-and-swap: a reclaim marked in between is
   * never overwritten unseen) and its liveness. A reclaim not yet fenced means
   * this node is back after others took its blocks: it fences itself, dropping
   * the veths whose endpoints the reclaim released, and says so in the record.
   */
  async register(): Promise<void> {
    const node = this.config.node;
    let written = false;
    while (!written) {
      const existing = await this.registry.getNode(node);
      let reclaimed = existing?.record.reclaimed;
      if (existing && reclaimed && reclaimed.fencedAt === undefined) {
        console.error(
          `sluice agent: fenced: ${reclaimed.by} reclaimed this node's blocks at ${reclaimed.at} (dead since ${existing.record.lastSeen}, past the grace period); containers from before lose their network`,
        );
        reclaimed = { ...reclaimed, fencedAt: this.isoNow() };
        this.pendingFence = reclaimed;
      }
      const { lastError } = this.reporter;
      const record: NodeRecord = {
        name: node,
        ip: this.config.nodeIp,
        ...(this.config.nodeIp6 !== undefined && { ip6: this.config.nodeIp6 }),
        backend: this.config.backend,
        ...(this.vtepMac && { vtepMac: this.vtepMac }),
        ...(this.wireguard && { wireguard: this.wireguard }),
        version: VERSION,
        lastSeen: this.isoNow(),
        ...(this.lastApply && { lastApply: this.lastApply }),
        ...(lastError && { lastError }),
        ...(reclaimed && { reclaimed }),
      };
      written = await this.registry.replaceNode(record, existing?.modRevision ?? 0);
    }
    if (!this.lease) {
      const lease = await this.registry.store.grantLease(LIVENESS_TTL_SECONDS);
      lease.onLost(() => {
        if (this.lease === lease) this.lease = undefined;
        void this.reregister();
      });
      this.lease = lease;
    }
    await this.registry.markAlive(node, this.lease);
    if (this.pendingFence) await this.fence(this.pendingFence);
  }

  /** Reclaims the nodes dead past the grace period: every agent tries, the store lets one win. */
  async reclaimDeadNodes(view: ClusterView): Promise<void> {
    const { node: me, gracePeriod } = this.config;
    for (const node of reclaimable(view, me, this.clock.now(), gracePeriod)) {
      const released = await reclaimNode(this.registry, node.name, me, this.clock.now());
      if (!released) continue;
      console.error(
        `sluice agent: reclaimed node ${node.name} (last seen ${node.lastSeen}, grace period ${gracePeriod} s): released ${released.blocks.length} block(s) [${released.blocks.map((b) => b.block).join(', ')}] and ${released.addresses} address(es)${released.complete ? '' : '; stopped early: the node came back or another agent is at it'}`,
      );
    }
  }

  /** The lease is left to expire: a restart within its TTL looks like nothing happened. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Removes, at once, every veth whose endpoint record the reclaim released:
   * its address may be another node's now, and this host must not serve it.
   */
  private async fence(reclaimed: Reclaim): Promise<void> {
    const veths = await this.dataplane.listEndpoints();
    const recorded = recordedVeths((await this.registry.store.list(keys.endpoints(this.config.node))).kvs);
    for (const ifname of veths) {
      if (!isSluiceHostIfname(ifname) || recorded.has(ifname)) continue;
      console.error(`sluice agent: fenced: removing ${ifname}: its endpoint and address were released when ${reclaimed.by} reclaimed this node at ${reclaimed.at}`);
      await this.dataplane.removeEndpoint(ifname);
    }
    this.pendingFence = undefined;
  }

  /** Liveness lapsed (etcd was away longer than the TTL): say so again as soon as the store answers. */
  private async reregister(): Promise<void> {
    // A failure that is not the store being away was reported; the liveness timer registers again.
    await this.reporter.retryUntil('re-register', () => this.register(), () => this.stopped).catch(() => undefined);
  }

  private isoNow(): string {
    return new Date(this.clock.now()).toISOString();
  }
}
