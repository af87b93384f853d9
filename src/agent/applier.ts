/**
 * The applier: makes the kernel hold a desired host state, sending only what
 * changed since the last apply it made. Gateways and routes unchanged cost no
 * process spawn; the firewall goes incrementally (policy/incremental.ts): a
 * container starting anywhere is an ipset delta, a policy change rewrites the
 * chains and sets it touches. A full apply sends everything again: at start,
 * on the resync timer (the kernel may have been changed behind Sluice's back)
 * and after a failed apply, which may have left the kernel anywhere in between.
 */
import type { Backend } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import type { NodeRecord } from '../model';
import { ipv6Change, ipv6State } from '../firewall/family';
import { isEmptyChange } from '../firewall/state';
import { IncrementalFirewall, type ClusterRecords } from '../policy/incremental';
import type { PeerMode } from '../routing/routes';
import type { HostState } from './desired';

/**
 * The firewall step of an apply, the one place that decides how the firewall
 * reaches the kernel. `changedEndpoints`: the only endpoint keys that may have
 * changed since the last step (undefined: any). `full`: the kernel may differ
 * from what was applied last, so no earlier apply may be taken for granted.
 */
export type FirewallStep = (records: ClusterRecords, changedEndpoints: ReadonlySet<string> | undefined, options: { full: boolean }) => Promise<void>;

/**
 * The firewalls of both families kept up to date by changes, the whole states written when a
 * full apply is due. IPv6's is there even with no dual-stack network: it closes the sluice veths
 * to IPv6 that a container could send anyway (from a link-local address, say).
 */
export function incrementalFirewall(dataplane: Pick<Dataplane, 'applyFirewall' | 'applyFirewallChange'>, node: string): FirewallStep {
  const ipv4 = new IncrementalFirewall(node, 4);
  const ipv6 = new IncrementalFirewall(node, 6);
  return async (records, changedEndpoints, { full }) => {
    // Always updated, whatever the kernel does next: the instances follow the records, the kernel follows them.
    const change4 = ipv4.update(records, changedEndpoints);
    const change6 = ipv6.update(records, changedEndpoints);
    // A change that fails leaves the kernel unknown: the applier makes the next step a full one.
    // The families' tables and sets are apart in the kernel: both applies go at once. Both are
    // awaited, so a failure of one never leaves the other still running into the next step.
    const applies: Promise<void>[] = full
      ? [dataplane.applyFirewall(ipv4.state(), 4), dataplane.applyFirewall(ipv6State(ipv6.state()), 6)]
      : // A container of one family only changes nothing of the other's.
        [...(isEmptyChange(change4) ? [] : [dataplane.applyFirewallChange(change4, 4)]), ...(isEmptyChange(change6) ? [] : [dataplane.applyFirewallChange(ipv6Change(change6), 6)])];
    for (const result of await Promise.allSettled(applies)) if (result.status === 'rejected') throw result.reason;
  };
}

export class Applier {
  /** What the last apply gave the kernel: the values themselves (unchanged ones keep their identity) and as text. */
  private applied: { gateways?: string[]; gatewaysText?: string; routes?: HostState['routes']; routesText?: string } = {};
  private fullDue = true;
  private readonly peerModes = new Map<string, PeerMode>();

  constructor(
    private readonly dataplane: Dataplane,
    private readonly firewall: FirewallStep,
  ) {}

  /** The next apply is a full one. */
  applyFullNext(): void {
    this.fullDue = true;
  }

  async apply(state: HostState, changedEndpoints: ReadonlySet<string> | undefined): Promise<void> {
    const full = this.fullDue;
    this.fullDue = false;
    try {
      if (full) this.applied = {};
      if (state.gateways !== this.applied.gateways) {
        const text = JSON.stringify(state.gateways);
        if (text !== this.applied.gatewaysText) await this.dataplane.syncGateways(state.gateways);
        this.applied.gateways = state.gateways;
        this.applied.gatewaysText = text;
      }
      if (state.routes !== this.applied.routes) {
        const text = JSON.stringify(state.routes);
        if (text !== this.applied.routesText) await this.dataplane.syncRoutes(state.routes);
        this.applied.routes = state.routes;
        this.applied.routesText = text;
      }
      await this.firewall(state.firewall, changedEndpoints, { full });
    } catch (err) {
      this.fullDue = true;
      throw err;
    }
  }

  /** How this host reaches each peer: host-gw needs a shared link, asked of the kernel once per peer address. */
  async peerModesTowards(me: string, backend: Backend, peers: Iterable<NodeRecord>): Promise<ReadonlyMap<string, PeerMode>> {
    if (backend !== 'auto') return this.peerModes;
    for (const peer of peers) {
      if (peer.name === me || this.peerModes.has(peer.ip)) continue;
      this.peerModes.set(peer.ip, (await this.dataplane.isOnLink(peer.ip)) ? 'host-gw' : 'vxlan');
    }
    return this.peerModes;
  }
}
