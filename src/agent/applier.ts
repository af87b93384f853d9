/**
 * The applier: makes the kernel hold a desired host state, sending only what
 * changed since the last apply it made (an unchanged part costs no process
 * spawn). A full apply sends everything again: at start, on the resync timer
 * (the kernel may have been changed behind Sluice's back) and after a failed
 * apply, which may have left the kernel anywhere in between.
 */
import type { Backend } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import type { PeerMode } from '../routing/routes';
import type { NodeRecord } from '../model';
import { compileFirewall, type CompileInput } from '../policy/compile';
import type { HostState } from './desired';

/**
 * The firewall step of an apply, the one place to change how the firewall
 * reaches the kernel. `full`: the kernel may differ from what was applied
 * last, so no earlier apply may be taken for granted.
 */
export type FirewallStep = (input: CompileInput, options: { full: boolean }) => Promise<void>;

/** Compiles the whole firewall every time; the dataplane itself rewrites only what changed. */
export function wholeFirewall(dataplane: Pick<Dataplane, 'applyFirewall'>): FirewallStep {
  return (input) => dataplane.applyFirewall(compileFirewall(input));
}

export class Applier {
  /** What the last apply gave the kernel, as text to compare. */
  private applied: { gateways?: string; routes?: string } = {};
  private fullDue = true;
  private readonly peerModes = new Map<string, PeerMode>();

  constructor(
    private readonly dataplane: Dataplane,
    private readonly firewall: FirewallStep = wholeFirewall(dataplane),
  ) {}

  /** The next apply is a full one. */
  applyFullNext(): void {
    this.fullDue = true;
  }

  async apply(state: HostState): Promise<void> {
    const full = this.fullDue;
    this.fullDue = false;
    try {
      if (full) this.applied = {};
      const gateways = JSON.stringify(state.gateways);
      if (gateways !== this.applied.gateways) {
        await this.dataplane.syncGateways(state.gateways);
        this.applied.gateways = gateways;
      }
      const routes = JSON.stringify(state.routes);
      if (routes !== this.applied.routes) {
        await this.dataplane.syncRoutes(state.routes);
        this.applied.routes = routes;
      }
      await this.firewall(state.firewall, { full });
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
