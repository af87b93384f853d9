/**
 * The per-host control loop, wiring small parts and owning their timers: the
 * cluster sync (sync.ts) keeps the view; on every change the desired host
 * state (desired.ts) goes to the kernel through the applier (applier.ts),
 * bursts coalesced into one apply. Beside it run the node's liveness
 * (liveness.ts), reconciliation against Docker (reconcile.ts), learning who
 * is behind each endpoint (identity.ts) and the managed networks
 * (managed-networks.ts). Failures of work nobody waits for go to the reporter.
 */
import createDebug from 'debug';
import type { AgentConfig } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import type { LocalConvergence } from '../driver/network-service';
import { StoreUnavailableError, errorMessage } from '../errors';
import type { Ipam, KnownPools } from '../ipam/ipam-service';
import type { NameSource } from '../dns/server';
import type { DockerHost } from '../labels/docker';
import { WIREGUARD_CONTAINER_MTU } from '../encryption/wireguard';
import { NO_METRICS, secondsSince, type Metrics } from '../metrics/metrics';
import type { BlockRecord, EndpointRecord, NetworkRecord } from '../model';
import type { ControlPlane, Protection } from '../policy/protect';
import { controlPlane } from './control-plane';
import type { Registry } from '../store/registry';
import { every, systemClock, type Clock } from '../util/clock';
import { Coalescer } from '../util/coalescer';
import { afterReply } from '../util/after-reply';
import { Applier, incrementalFirewall } from './applier';
import { HostEncryption } from './encryption';
import { NodeProtection, firewallRecords, hostRouting, type HostRouting } from './desired';
import { Identities } from './identity';
import { Liveness } from './liveness';
import { ManagedNetworks } from './managed-networks';
import { Reconciler } from './reconcile';
import { Reporter } from './reporter';
import { ClusterSync } from './sync';
import type { ClusterView } from './view';

const debug = createDebug('sluice:agent');
const RECONCILE_INTERVAL_MS = 60_000;
const LIVENESS_INTERVAL_MS = 60_000;

/** The resolver of container names as the agent drives it (src/dns/server.ts). */
export interface NameServer {
  update(source: NameSource): void;
  close(): Promise<void>;
}

/** Starts serving names on `address`, which is on the host by then; rejects with a clear error when it cannot. */
export type StartNameServer = (address: string) => Promise<NameServer>;

export interface AgentOptions {
  /** How long a leftover must stay one before reconciliation removes it. */
  reconcileConfirmMs: number;
  /** Between reconciliations with Docker while running: finds what a missed event leaked. */
  reconcileIntervalMs?: number;
  /** Time for every part: the system's unless a test brings its own. */
  clock?: Clock;
  /** Uniform in [0, 1), like Math.random (the default): picks when to re-list after a broken watch. */
  random?: () => number;
}

export class Agent implements LocalConvergence, KnownPools {
  private readonly clock: Clock;
  private readonly reporter: Reporter;
  private readonly sync: ClusterSync;
  private readonly applier: Applier;
  private readonly liveness: Liveness;
  private readonly reconciler: Reconciler;
  private readonly identities: Identities;
  private readonly managed: ManagedNetworks;
  /** WireGuard between hosts, or the refusal of encrypted nodes without it (agent/encryption.ts). */
  private readonly encryption: HostEncryption;
  private readonly converger = new Coalescer(() => this.applyDesiredState());
  /** This host's endpoints between CreateEndpoint and Join, by ID: in no store and no view yet. */
  private readonly creating = new Map<string, EndpointRecord>();
  /** Resolved before the first apply: no firewall ever leaves the control plane open. */
  private protection: NodeProtection | undefined;
  private hostProtection: Protection | undefined;
  /** Gateways and routes as last derived; derived again only when what they depend on changed. */
  private routing: HostRouting | undefined;
  private events: { close(): void } | undefined;
  private timers: (() => void)[] = [];
  private stopped = false;
  private names: NameServer | undefined;
  /** The MTU towards the node IP, measured at start unless only host-gw is used. */
  private underlayMtu: number | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly registry: Registry,
    private readonly dataplane: Dataplane,
    private readonly docker: DockerHost,
    ipam: Ipam,
    private readonly options: AgentOptions = { reconcileConfirmMs: 3000 },
    private readonly metrics: Metrics = NO_METRICS,
    /** Serves container names when given; its address is then kept on the host beside the gateways. */
    private readonly startNames?: StartNameServer,
  ) {
    const clock = (this.clock = options.clock ?? systemClock);
    this.reporter = new Reporter(clock);
    const stopped = (): boolean => this.stopped;
    this.sync = new ClusterSync(registry.store, clock, this.reporter, {
      listed: () => this.names?.update(this.view),
      changed: (seen) => {
        this.names?.update(this.view);
        this.converge().then(() => metrics.converged(secondsSince(seen)), (err: unknown) => this.reporter.report('apply', err));
        void this.followManagedNetworks();
      },
      relisted: () => this.converge(),
    }, options.random ?? Math.random, stopped);
    this.applier = new Applier(dataplane, incrementalFirewall(dataplane, config.node));
    this.liveness = new Liveness(config, registry, dataplane, clock, this.reporter);
    const { view, node } = this;
    this.reconciler = new Reconciler({
      node,
      registry,
      dataplane,
      docker,
      ipam,
      view,
      creating: this.creating,
      clock,
      confirmMs: options.reconcileConfirmMs,
      networksChanged: () => this.networksChanged(),
    });
    this.identities = new Identities(node, view, docker, registry, (endpoint) => this.endpointChanged(endpoint));
    this.managed = new ManagedNetworks(node, view, docker, registry);
    this.encryption = new HostEncryption(config, dataplane, (what, message) => this.reporter.report(what, new Error(message)));
  }

  get node(): string {
    return this.config.node;
  }

  get view(): ClusterView {
    return this.sync.view;
  }

  /**
   * Container MTU: with `auto` the underlay's, for on-link peers; traffic into the tunnel meets
   * its smaller MTU on the route (frag-needed, MSS clamped). With VXLAN only, room for its
   * header; with WireGuard, for its.
   */
  get mtu(): number {
    if (this.config.mtu !== undefined) return this.config.mtu;
    if (this.config.encryption === 'wireguard') return WIREGUARD_CONTAINER_MTU;
    if (this.config.backend === 'host-gw') return 1500;
    const underlay = this.underlayMtu ?? 1500;
    return this.config.backend === 'vxlan' ? underlay - 50 : underlay;
  }

  /** Of the VXLAN device and the routes through it: room for the header, and no more than containers send. */
  private get tunnelMtu(): number {
    return Math.min(this.underlayMtu ?? 1500, this.mtu + 50) - 50;
  }

  /**
   * Sets up the host, then syncs with the store, retrying while the store or
   * Docker is away: the plugin socket already serves (with clear store errors)
   * and nothing in the kernel changes until the view is complete.
   */
  async start(): Promise<void> {
    const { config } = this;
    await this.dataplane.init();
    await this.encryption.start();
    this.liveness.wireguard = this.encryption.recordFields().wireguard;
    if (config.backend !== 'host-gw') {
      this.underlayMtu = await this.dataplane.mtuTowards(config.nodeIp);
      this.liveness.vtepMac = (await this.dataplane.ensureVxlan({ vni: config.vxlanVni, localIp: config.nodeIp, port: config.vxlanPort, mtu: this.tunnelMtu })).mac;
    }
    const sync = async (): Promise<void> => {
      this.protection ??= new NodeProtection(await resolveControlPlane(config), config.nodeIp);
      await this.liveness.register();
      await this.sync.list();
      await this.reconciler.run();
      await this.converge();
      await this.followManagedNetworks();
    };
    await this.reporter.retryUntil('sync with the store and Docker', sync, () => this.stopped);
    if (this.stopped) return;
    if (this.startNames) {
      // The first apply above put the address on the host: binding to it can work now.
      this.names = await this.startNames(config.dnsAddress);
      this.names.update(this.view);
    }
    // The stream's first connect follows the reconciliation above; a later one means dockerd
    // went away (restarted?) and may have dropped containers without telling the plugin.
    let connects = 0;
    this.events = this.docker.watchEvents(
      (event) => void this.identities.onDockerEvent(event).catch((err: unknown) => this.reporter.report('learning from a Docker event', err)),
      () => void (connects++ > 0 && this.background('reconcile with Docker', () => this.reconciler.run())),
    );
    const resyncMs = config.resyncInterval * 1000;
    this.every('resync', resyncMs, () => this.resync());
    this.every('reclaim dead nodes', resyncMs, () => this.liveness.reclaimDeadNodes(this.view));
    this.every('reconcile with Docker', this.options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS, () => this.reconciler.run());
    this.every('liveness', LIVENESS_INTERVAL_MS, () => this.liveness.register());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.liveness.stop();
    for (const cancel of this.timers) cancel();
    this.events?.close();
    await this.sync.close();
    await this.names?.close();
  }

  // LocalConvergence: called by the driver during Docker's plugin calls.

  endpointCreated(endpoint: EndpointRecord): void {
    this.creating.set(endpoint.id, endpoint);
  }

  async endpointChanged(endpoint: EndpointRecord): Promise<void> {
    this.creating.delete(endpoint.id);
    this.view.putEndpoint(endpoint);
    this.names?.update(this.view);
    await this.converge();
  }

  endpointRemoved(endpoint: EndpointRecord): void {
    this.creating.delete(endpoint.id);
    this.view.putEndpoint(endpoint, true);
    this.names?.update(this.view);
    void afterReply().then(() => this.background('apply', () => this.converge()));
  }

  async networksChanged(): Promise<void> {
    this.view.putDockerNets(this.node, await this.registry.listDockerNets(this.node));
    await this.converge();
  }

  knownNetwork(dockerNetworkId: string): NetworkRecord | undefined {
    const net = this.view.dockerNets.get(`${this.node}/${dockerNetworkId}`);
    return net === undefined ? undefined : this.view.networks.get(net);
  }

  knownEndpoint(endpointId: string): EndpointRecord | undefined {
    return this.creating.get(endpointId) ?? this.view.endpoints.get(`${this.node}/${endpointId}`);
  }

  // KnownPools: asked by IPAM during Docker's plugin calls.

  knownPool(net: string): NetworkRecord | undefined {
    return this.view.networks.get(net) ?? this.view.ipv6Pools.get(net);
  }

  knownBlocks(net: string): BlockRecord[] | undefined {
    if (!this.sync.listed) return undefined;
    return [...this.view.blocks.values()].filter((b) => b.network === net);
  }

  /** Resolves once an apply that started after this call has finished. */
  converge(): Promise<void> {
    if (!this.sync.listed) return Promise.resolve();
    return this.converger.run();
  }

  private async applyDesiredState(): Promise<void> {
    const started = process.hrtime.bigint();
    if (this.protection === undefined) throw new Error('the control plane is not resolved yet');
    const { node, backend, dnsAddress } = this.config;
    const { view } = this;
    const changes = view.takeChanges();
    // The node addresses change with the structure only: not read again for a container's start.
    if (changes.structure || this.hostProtection === undefined) this.hostProtection = this.protection.of(view.nodes.values());
    const host = {
      node,
      backend,
      protection: this.hostProtection,
      dnsAddress: this.startNames && dnsAddress,
      tunnelMtu: this.tunnelMtu,
      ipv6Masquerade: this.config.ipv6Outbound === 'masquerade',
    };
    // After a failure or on resync nothing derived is trusted, the firewall's endpoint hints
    // included (a failed apply may have consumed some): every endpoint is compared then.
    const endpointHints = this.routing === undefined ? undefined : changes.endpoints;
    try {
      if (changes.structure || this.routing === undefined) {
        const peerModes = await this.applier.peerModesTowards(node, backend, view.nodes.values());
        const planned = hostRouting(view, host, peerModes);
        await this.encryption.apply(view);
        this.routing = { ...planned, routes: this.encryption.routes(view, planned.routes) };
      }
      await this.applier.apply({ ...this.routing, firewall: firewallRecords(view, host) }, endpointHints);
    } catch (err) {
      // Derived again next time: a half-made apply may have missed what the cached routing holds.
      this.routing = undefined;
      throw err;
    }
    const seconds = secondsSince(started);
    this.metrics.dataplaneApplied(seconds);
    this.liveness.lastApply = new Date(this.clock.now()).toISOString();
    debug('applied desired state in %d ms', Math.round(seconds * 1000));
  }

  /** Periodic: re-list if a broken watch is still broken, pick up labels still unknown, repair the kernel. */
  private async resync(): Promise<void> {
    await this.sync.recover();
    await this.identities.learnMissingLabels().catch((err: unknown) => this.reporter.report('learning container labels', err));
    const damage = await this.dataplane.verifyFirewall();
    if (damage.length > 0) console.error(`sluice agent: repairing firewall changed outside sluice: ${damage.join('; ')}`);
    // Gateways and routes are sent again too: someone may have removed them.
    this.applier.applyFullNext();
    this.routing = undefined;
    await this.encryption.resync();
    await this.converge();
  }

  /** Rolls this host's WireGuard key and publishes the new public key at once (SIGUSR2). */
  async rotateWireguardKey(): Promise<void> {
    const publicKey = await this.encryption.rotate();
    this.liveness.wireguard = this.encryption.recordFields().wireguard;
    await this.converge();
    await this.liveness.register();
    console.error(`sluice agent: rotated the WireGuard key: new public key ${publicKey}`);
  }

  private followManagedNetworks(): Promise<void> {
    return this.background('following managed networks', () => this.managed.follow());
  }

  /** Runs work nobody waits for: its failure goes to the reporter. */
  private background(what: string, work: () => Promise<void>): Promise<void> {
    return work().catch((err: unknown) => this.reporter.report(what, err));
  }

  private every(what: string, ms: number, task: () => Promise<void>): void {
    this.timers.push(every(this.clock, ms, () => void this.background(what, task)));
  }
}

/** The store's host names resolved; a resolver that does not answer is the store being away. */
async function resolveControlPlane(config: AgentConfig): Promise<ControlPlane> {
  return controlPlane(config).catch((err: unknown) => {
    if (typeof (err as { code?: unknown }).code !== 'string') throw err;
    throw new StoreUnavailableError(`cannot resolve the store's addresses: ${errorMessage(err)}`);
  });
}
