/**
 * The per-host control loop. It keeps a view of the whole cluster (one list,
 * then one watch), derives what this host's kernel should hold (gateways,
 * routes to every block, the firewall) and makes the kernel match through
 * the dataplane, coalescing bursts into one apply. It also keeps the node's
 * liveness, reconciles the store against Docker's truth at start and after a
 * dockerd restart, learns container labels, and creates the Docker networks
 * defined with `sluice network create`.
 */
import createDebug from 'debug';
import type { AgentConfig } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import { endpointIfnames, isSluiceHostIfname } from '../dataplane/names';
import type { LocalConvergence } from '../driver/network-service';
import { InvalidRecordError, errorMessage } from '../errors';
import type { Ipam } from '../ipam/ipam-service';
import type { NameSource } from '../dns/server';
import type { ContainerEvent, DockerHost } from '../labels/docker';
import { blockRoutes, type PeerMode } from '../lease/routes';
import { NO_METRICS, secondsSince, type Metrics } from '../metrics/metrics';
import type { EndpointRecord, NetworkRecord, NodeRecord, Reclaim } from '../model';
import { compileFirewall } from '../policy/compile';
import { controlPlane, protection, type ControlPlane } from '../policy/protect';
import { ROOT, keys, leaf } from '../store/keys';
import { readEndpoint, tryRead } from '../store/records';
import type { Registry } from '../store/registry';
import type { KeyValue, Lease, Watch } from '../store/store';
import { Coalescer } from '../util/coalescer';
import { reclaimNode, reclaimable } from './reclaim';
import { ClusterView } from './view';

const debug = createDebug('sluice:agent');

export const VERSION = '0.1.0';
const LIVENESS_TTL_SECONDS = 30;
const RETRY_MS = 1000;
/** Re-lists after a broken watch are spread over this much per node in the cluster, up to the cap. */
const RELIST_SPREAD_PER_NODE_MS = 10;
const RELIST_SPREAD_MAX_MS = 2000;

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
  /** The clock that decides when a dead node's grace period is over. */
  now?: () => number;
  /** Uniform in [0, 1), like Math.random (the default): picks when to re-list after a broken watch. */
  random?: () => number;
}

/**
 * How long to wait before re-listing after a broken watch. etcd restarting or compacting breaks
 * every agent's watch at once; a random wait in a window that grows with the cluster spreads their
 * lists out (a second for 100 nodes, 2 s from 200 on) instead of all hitting etcd together.
 */
export function relistDelayMs(nodes: number, random: number): number {
  return Math.floor(random * Math.min(RELIST_SPREAD_MAX_MS, nodes * RELIST_SPREAD_PER_NODE_MS));
}

const RECONCILE_INTERVAL_MS = 60_000;
const REPORT_INTERVAL_MS = 60_000;

export class Agent implements LocalConvergence {
  readonly view = new ClusterView();
  private readonly converger = new Coalescer(() => this.applyDesiredState());
  private readonly reconciler = new Coalescer(() => this.reconcileOnce());
  /** This node was reclaimed while away; set until its stale veths are gone. */
  private pendingFence: Reclaim | undefined;
  private readonly peerModes = new Map<string, PeerMode>();
  /** What the last successful apply gave the kernel, so unchanged parts cost no process spawn. */
  private applied: { gateways?: string; routes?: string } = {};
  private vtepMac: string | undefined;
  /** Resolved before the first apply: no firewall ever leaves the control plane open. */
  private controlPlane: ControlPlane | undefined;
  private watch: Watch | undefined;
  private lease: Lease | undefined;
  private events: { close(): void } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** What the node reports with its liveness, for `sluice status`. */
  private lastApply: string | undefined;
  private lastError: NodeRecord['lastError'];
  /** When each kind of background failure was last logged (report()). */
  private readonly reported = new Map<string, number>();
  private inSync = false;
  private followingNetworks = false;
  private names: NameServer | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly registry: Registry,
    private readonly dataplane: Dataplane,
    private readonly docker: DockerHost,
    private readonly ipam: Ipam,
    private readonly options: AgentOptions = { reconcileConfirmMs: 3000 },
    private readonly metrics: Metrics = NO_METRICS,
    /** Serves container names when given; its address is then kept on the host beside the gateways. */
    private readonly startNames?: StartNameServer,
  ) {}

  get node(): string {
    return this.config.node;
  }

  /** The MTU towards the node IP, measured at start unless only host-gw is used. */
  private underlayMtu: number | undefined;

  /**
   * Container MTU: with `auto` the underlay's, for on-link peers; traffic into the tunnel meets
   * its smaller MTU on the route (frag-needed, MSS clamped). With VXLAN only, room for its header.
   */
  get mtu(): number {
    if (this.config.mtu !== undefined) return this.config.mtu;
    if (this.config.backend === 'host-gw') return 1500;
    const underlay = this.underlayMtu ?? 1500;
    return this.config.backend === 'vxlan' ? underlay - 50 : underlay;
  }

  /** Of the VXLAN device and the routes through it: room for the header, and no more than containers send. */
  private get tunnelMtu(): number {
    return Math.min(this.underlayMtu ?? 1500, this.mtu + 50) - 50;
  }

  /**
   * Sets up the host, then syncs with the store, retrying until the store
   * answers: the plugin socket already serves (with clear store errors) and
   * nothing in the kernel changes until the view is complete.
   */
  async start(): Promise<void> {
    await this.dataplane.init();
    if (this.config.backend !== 'host-gw') {
      this.underlayMtu = await this.dataplane.mtuTowards(this.config.nodeIp);
      this.vtepMac = (
        await this.dataplane.ensureVxlan({ vni: this.config.vxlanVni, localIp: this.config.nodeIp, port: this.config.vxlanPort, mtu: this.tunnelMtu })
      ).mac;
    }
    await this.retryUntil('sync with the store and Docker', async () => {
      this.controlPlane ??= await controlPlane(this.config);
      await this.register();
      await this.relist();
      await this.reconcileWithDocker();
      await this.converge();
      await this.followManagedNetworks();
    });
    if (this.startNames && !this.stopped) {
      // The first apply above put the address on the host: binding to it can work now.
      this.names = await this.startNames(this.config.dnsAddress);
      this.names.update(this.view);
    }
    // The stream's first connect follows the reconciliation above; a later one means dockerd
    // went away (restarted?) and may have dropped containers without telling the plugin.
    let connects = 0;
    this.events = this.docker.watchEvents(
      (event) => void this.onDockerEvent(event),
      () => {
        if (connects++ === 0) return;
        this.reconcileWithDocker().catch((err: unknown) => this.report('reconcile with Docker', err));
      },
    );
    this.every('resync', this.config.resyncInterval * 1000, () => this.resync());
    this.every('reclaim dead nodes', this.config.resyncInterval * 1000, () => this.reclaimDeadNodes());
    this.every('reconcile with Docker', this.options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS, () => this.reconcileWithDocker());
    this.every('liveness', 60_000, () => this.register());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.events?.close();
    await this.watch?.close();
    await this.names?.close();
    // The liveness lease is left to expire: a restart within its TTL looks like nothing happened.
  }

  // LocalConvergence: called by the driver during Docker's plugin calls.

  async endpointChanged(endpoint: EndpointRecord): Promise<void> {
    this.view.endpoints.set(`${endpoint.node}/${endpoint.id}`, endpoint);
    this.names?.update(this.view);
    await this.converge();
  }

  endpointRemoved(endpoint: EndpointRecord): void {
    this.view.endpoints.delete(`${endpoint.node}/${endpoint.id}`);
    this.names?.update(this.view);
    this.converge().catch((err: unknown) => this.report('apply', err));
  }

  async networksChanged(): Promise<void> {
    for (const key of [...this.view.dockerNets.keys()]) if (key.startsWith(`${this.node}/`)) this.view.dockerNets.delete(key);
    for (const d of await this.registry.listDockerNets(this.node)) this.view.dockerNets.set(`${d.node}/${d.dockerNetworkId}`, d.network);
    await this.converge();
  }

  knownNetwork(dockerNetworkId: string): NetworkRecord | undefined {
    const net = this.view.dockerNets.get(`${this.node}/${dockerNetworkId}`);
    return net === undefined ? undefined : this.view.networks.get(net);
  }

  /** Resolves once an apply that started after this call has finished. */
  converge(): Promise<void> {
    if (!this.inSync) return Promise.resolve();
    return this.converger.run();
  }

  private async applyDesiredState(): Promise<void> {
    const started = process.hrtime.bigint();
    const view = this.view;
    const local = view.networksOn(this.node);
    const gateways = [...local].flatMap((net) => {
      const network = view.networks.get(net);
      return network ? [network.gateway] : [];
    });
    // The resolver's address is held like a gateway: containers reach it through their gateway route.
    if (this.startNames) gateways.push(this.config.dnsAddress);
    const gatewaysText = JSON.stringify(gateways.sort());
    if (gatewaysText !== this.applied.gateways) {
      await this.dataplane.syncGateways(gateways);
      this.applied.gateways = gatewaysText;
    }
    await this.refreshPeerModes();
    const routes = blockRoutes(this.node, view.blocks.values(), view.nodes, (peer) => this.modeTowards(peer), this.tunnelMtu);
    const routesText = JSON.stringify(routes);
    if (routesText !== this.applied.routes) {
      await this.dataplane.syncRoutes(routes);
      this.applied.routes = routesText;
    }
    if (this.controlPlane === undefined) throw new Error('the control plane is not resolved yet');
    const nodeIps = [...view.nodes.values()].map((n) => n.ip);
    await this.dataplane.applyFirewall(
      compileFirewall({
        node: this.node,
        networks: [...view.networks.values()],
        endpoints: [...view.endpoints.values()],
        policies: [...view.policies.values()],
        protection: protection(this.controlPlane, nodeIps, this.config.nodeIp),
        ...(this.startNames && { dnsAddress: this.config.dnsAddress }),
      }),
    );
    const seconds = secondsSince(started);
    this.metrics.dataplaneApplied(seconds);
    this.lastApply = new Date(this.now()).toISOString();
    debug('applied desired state in %d ms', Math.round(seconds * 1000));
  }

  private modeTowards(peer: NodeRecord): PeerMode {
    if (this.config.backend !== 'auto') return this.config.backend;
    return this.peerModes.get(peer.ip) ?? 'vxlan';
  }

  /** host-gw needs a shared link; ask the kernel once per peer address. */
  private async refreshPeerModes(): Promise<void> {
    if (this.config.backend !== 'auto') return;
    for (const peer of this.view.nodes.values()) {
      if (peer.name === this.node || this.peerModes.has(peer.ip)) continue;
      this.peerModes.set(peer.ip, (await this.dataplane.isOnLink(peer.ip)) ? 'host-gw' : 'vxlan');
    }
  }

  /**
   * Writes this node's record (compare-and-swap: a reclaim marked in between is
   * never overwritten unseen) and its liveness. A reclaim not yet fenced means
   * this node is back after others took its blocks: it fences itself, dropping
   * the veths whose endpoints the reclaim released, and says so in the record.
   */
  private async register(): Promise<void> {
    let written = false;
    while (!written) {
      const existing = await this.registry.getNode(this.node);
      let reclaimed = existing?.record.reclaimed;
      if (existing && reclaimed && reclaimed.fencedAt === undefined) {
        console.error(
          `sluice agent: fenced: ${reclaimed.by} reclaimed this node's blocks at ${reclaimed.at} (dead since ${existing.record.lastSeen}, past the grace period); containers from before lose their network`,
        );
        reclaimed = { ...reclaimed, fencedAt: new Date().toISOString() };
        this.pendingFence = reclaimed;
      }
      const record: NodeRecord = {
        name: this.node,
        ip: this.config.nodeIp,
        backend: this.config.backend,
        ...(this.vtepMac && { vtepMac: this.vtepMac }),
        version: VERSION,
        lastSeen: new Date().toISOString(),
        ...(this.lastApply && { lastApply: this.lastApply }),
        ...(this.lastError && { lastError: this.lastError }),
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
    await this.registry.markAlive(this.node, this.lease);
    if (this.pendingFence) await this.fence(this.pendingFence);
  }

  /**
   * Removes, at once, every veth whose endpoint record the reclaim released:
   * its address may be another node's now, and this host must not serve it.
   */
  private async fence(reclaimed: Reclaim): Promise<void> {
    const veths = await this.dataplane.listEndpoints();
    const recorded = recordedVeths((await this.registry.store.list(keys.endpoints(this.node))).kvs);
    for (const ifname of veths) {
      if (!isSluiceHostIfname(ifname) || recorded.has(ifname)) continue;
      console.error(`sluice agent: fenced: removing ${ifname}: its endpoint and address were released when ${reclaimed.by} reclaimed this node at ${reclaimed.at}`);
      await this.dataplane.removeEndpoint(ifname);
    }
    this.pendingFence = undefined;
  }

  /** Reclaims the nodes dead past the grace period: every agent tries, the store lets one win. */
  private async reclaimDeadNodes(): Promise<void> {
    if (!this.inSync) return;
    for (const node of reclaimable(this.view, this.node, this.now(), this.config.gracePeriod)) {
      const released = await reclaimNode(this.registry, node.name, this.node, this.now());
      if (!released) continue;
      console.error(
        `sluice agent: reclaimed node ${node.name} (last seen ${node.lastSeen}, grace period ${this.config.gracePeriod} s): released ${released.blocks.length} block(s) [${released.blocks.map((b) => b.block).join(', ')}] and ${released.addresses} address(es)${released.complete ? '' : '; stopped early: the node came back or another agent is at it'}`,
      );
    }
  }

  /** Liveness lapsed (etcd was away longer than the TTL): say so again as soon as the store answers. */
  private async reregister(): Promise<void> {
    await this.retryUntil('re-register', () => this.register());
  }

  /** Lists the whole cluster and watches from there; a broken watch comes back here. */
  private async relist(): Promise<void> {
    await this.watch?.close();
    const { kvs, revision } = await this.registry.store.list(ROOT);
    this.view.reset(kvs);
    this.names?.update(this.view);
    this.inSync = true;
    this.watch = this.registry.store.watch(ROOT, revision + 1, {
      onEvents: (events) => {
        const seen = process.hrtime.bigint();
        // Address claims, liveness renewals and the like change nothing this host enforces: they cost nothing.
        if (!this.view.apply(events)) return;
        this.names?.update(this.view);
        this.converge().then(
          () => this.metrics.converged(secondsSince(seen)),
          (err: unknown) => this.report('apply', err),
        );
        void this.followManagedNetworks();
      },
      onReset: (reason) => {
        debug('watch reset: %s', reason);
        void this.retryUntilSynced();
      },
    });
  }

  private async retryUntilSynced(): Promise<void> {
    await sleep(relistDelayMs(this.view.nodes.size, (this.options.random ?? Math.random)()));
    await this.retryUntil('re-list', async () => {
      await this.relist();
      await this.converge();
    });
  }

  /** Runs `work` until it succeeds or the agent stops, a second apart: the store or Docker may be away for a while. */
  private async retryUntil(what: string, work: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      try {
        await work();
        return;
      } catch (err) {
        this.lastError = { at: new Date(this.now()).toISOString(), message: `${what}: ${errorMessage(err)}` };
        console.error(`sluice agent: ${what} failed: ${errorMessage(err)}; retrying`);
        await sleep(RETRY_MS);
      }
    }
  }

  /** Periodic: repair the kernel if someone changed it, and pick up labels still unknown. */
  private async resync(): Promise<void> {
    if (!this.inSync) return;
    await this.learnMissingLabels();
    const damage = await this.dataplane.verifyFirewall();
    if (damage.length > 0) console.error(`sluice agent: repairing firewall changed outside sluice: ${damage.join('; ')}`);
    // Routes and gateways are re-read from the kernel, not trusted from memory.
    this.applied = {};
    await this.converge();
  }

  private async onDockerEvent(event: ContainerEvent): Promise<void> {
    if (event.kind === 'container' && event.action === 'start') await this.learnMissingLabels();
    if (event.kind === 'network' && event.action === 'connect') await this.learnMissingLabels();
    // Aliases are only known once the container runs (Join cannot ask for them);
    // a renamed container answers to its new name on every host.
    const running = event.kind === 'container' && (event.action === 'start' || event.action === 'rename');
    if (running || (event.kind === 'network' && event.action === 'connect')) await this.learnNames(event.containerId);
  }

  /** Endpoints whose container Docker could not name during Join stay fail-closed until this finds them. */
  private async learnMissingLabels(): Promise<void> {
    for (const endpoint of this.view.endpointsOf(this.node).filter((e) => e.labels === null)) {
      const dockerNetworkId = this.view.dockerNetworkId(this.node, endpoint.network);
      if (dockerNetworkId === undefined) continue;
      const identity = await this.docker.containerOf(dockerNetworkId, endpoint.id).catch(() => undefined);
      if (identity) await this.record({ ...endpoint, ...identity });
    }
  }

  /** The container's current name and aliases on each of its endpoints here, for the resolvers of every host. */
  private async learnNames(containerId: string): Promise<void> {
    const endpoints = this.view.endpointsOf(this.node).filter((e) => e.containerId === containerId);
    if (endpoints.length === 0) return;
    const names = await this.docker.containerNames(containerId).catch(() => undefined);
    if (!names) return;
    for (const endpoint of endpoints) {
      const dockerNetworkId = this.view.dockerNetworkId(this.node, endpoint.network);
      const aliases = dockerNetworkId === undefined ? undefined : names.aliases.get(dockerNetworkId);
      await this.record({ ...endpoint, containerName: names.name, ...(aliases && { aliases }) });
    }
  }

  /**
   * Writes what was learned about an endpoint's container, unless nothing changed or the endpoint
   * was removed while Docker was asked (a `docker run --rm` container that exited at once): a record
   * brought back would be reconciled away later, releasing whoever holds its address by then.
   */
  private async record(updated: EndpointRecord): Promise<void> {
    const current = this.view.endpoints.get(`${updated.node}/${updated.id}`);
    if (!current || sameIdentity(updated, current)) return;
    await this.registry.putEndpoint(updated);
    await this.endpointChanged(updated);
  }

  /**
   * Docker is the truth about which containers run here. Endpoints, veths and
   * addresses with no container behind them are leftovers of a crash or of a
   * dockerd restart that never sent Leave/DeleteEndpoint: remove them.
   * Nothing that Docker still lists is touched, and since a container that is
   * starting right now is not listed yet either, only what is left over on two
   * looks `reconcileConfirmMs` apart, unchanged in between, is removed.
   */
  reconcileWithDocker(): Promise<void> {
    // At start, after a dockerd restart and on a timer: one pass at a time.
    return this.reconciler.run();
  }

  private async reconcileOnce(): Promise<void> {
    const first = await this.findLeftovers();
    if (first.size > 0) {
      await sleep(this.options.reconcileConfirmMs);
      const second = await this.findLeftovers();
      for (const [key, leftover] of second) {
        if (first.get(key)?.version !== leftover.version) continue;
        console.error(`sluice agent: removing ${key}: Docker has no container for it`);
        await leftover.remove();
      }
    }
    await this.networksChanged();
  }

  /** What this node holds that Docker does not know, keyed by what it is, with a version to compare. */
  private async findLeftovers(): Promise<Map<string, { version: string; remove(): Promise<void> }>> {
    const dockerNetworks = await this.docker.sluiceNetworks();
    const liveEndpoints = new Set(dockerNetworks.flatMap((n) => n.endpoints.map((e) => e.endpointId)));
    const liveNetworks = new Set(dockerNetworks.map((n) => n.id));
    const found = new Map<string, { version: string; remove(): Promise<void> }>();
    const store = this.registry.store;

    for (const kv of (await store.list(keys.dockerNets(this.node))).kvs) {
      const dockerNetworkId = leaf(kv.key);
      if (liveNetworks.has(dockerNetworkId)) continue;
      found.set(`docker network ${dockerNetworkId}`, {
        version: String(kv.modRevision),
        remove: async () => {
          await this.registry.deleteDockerNet(this.node, dockerNetworkId);
          await this.ipam.releaseBlocks(kv.value);
        },
      });
    }
    const endpointKvs = (await store.list(keys.endpoints(this.node))).kvs;
    const endpoints = endpointKvs.flatMap((kv) => {
      const record = tryRead(kv, readEndpoint);
      return record instanceof InvalidRecordError ? [] : [{ record, version: String(kv.modRevision) }];
    });
    for (const { record, version } of endpoints) {
      if (liveEndpoints.has(record.id)) continue;
      found.set(`endpoint ${record.id}`, {
        version,
        remove: async () => {
          await this.dataplane.removeEndpoint(record.hostIfname);
          await this.registry.deleteEndpoint(this.node, record.id);
          await this.ipam.releaseAddress(record.network, record.address).catch(() => undefined);
          this.view.endpoints.delete(`${this.node}/${record.id}`);
        },
      });
    }
    const veths = recordedVeths(endpointKvs);
    for (const ifname of await this.dataplane.listEndpoints()) {
      if (!isSluiceHostIfname(ifname) || veths.has(ifname)) continue;
      found.set(`veth ${ifname}`, { version: '', remove: () => this.dataplane.removeEndpoint(ifname) });
    }
    for (const network of await this.registry.listNetworks()) {
      for (const { record, modRevision } of await this.registry.listAddresses(network.key)) {
        if (record.node !== this.node || record.kind !== 'endpoint') continue;
        if (record.endpointId !== undefined && liveEndpoints.has(record.endpointId)) continue;
        found.set(`address ${record.address} of ${network.subnet}`, {
          version: String(modRevision),
          remove: () => this.ipam.releaseAddress(network.key, record.address),
        });
      }
    }
    return found;
  }

  /** Creates Docker networks defined with `sluice network create`, removes those whose definition is gone. */
  private async followManagedNetworks(): Promise<void> {
    // Creating a Docker network calls back into this plugin and changes the store: one pass at a time.
    if (this.followingNetworks) return;
    this.followingNetworks = true;
    try {
      const local = this.view.networksOn(this.node);
      for (const network of this.view.networks.values()) {
        if (!network.managed || !network.name || local.has(network.key)) continue;
        debug('creating docker network %s (%s)', network.name, network.subnet);
        await this.docker.createNetwork(network.name, network.subnet);
      }
      for (const [key, net] of [...this.view.dockerNets]) {
        if (!key.startsWith(`${this.node}/`) || this.view.networks.has(net)) continue;
        // The view may simply not have seen a brand-new network yet: ask the store itself.
        if (await this.registry.getNetwork(net)) continue;
        await this.docker.removeNetwork(key.slice(this.node.length + 1));
      }
    } catch (err) {
      this.report('following managed networks', err);
    } finally {
      this.followingNetworks = false;
    }
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private every(what: string, ms: number, task: () => Promise<void>): void {
    this.timers.push(
      setInterval(() => {
        task().catch((err: unknown) => this.report(what, err));
      }, ms),
    );
  }

  /**
   * A failure of work nobody waits for: logged whatever DEBUG says, at most once a minute per
   * kind of work so a long outage does not flood the log, and reported in `sluice status`.
   */
  private report(what: string, err: unknown): void {
    const now = this.now();
    const message = `${what}: ${errorMessage(err)}`;
    this.lastError = { at: new Date(now).toISOString(), message };
    if (now - (this.reported.get(what) ?? -Infinity) < REPORT_INTERVAL_MS) return;
    this.reported.set(what, now);
    console.error(`sluice agent: ${message}`);
  }
}

/** The veths of endpoint records. An invalid record keeps its veth: nothing acts on what it cannot read. */
function recordedVeths(endpointKvs: KeyValue[]): Set<string> {
  return new Set(endpointKvs.flatMap((kv) => vethOf(leaf(kv.key))));
}

/** Whether the container fields of two records agree: an unchanged one is not written again. */
function sameIdentity(a: EndpointRecord, b: EndpointRecord): boolean {
  const identity = (e: EndpointRecord): string => JSON.stringify([e.containerId, e.containerName, e.aliases, e.labels]);
  return identity(a) === identity(b);
}

/** The veth of an endpoint ID, if the ID can name one. */
function vethOf(endpointId: string): string[] {
  try {
    return [endpointIfnames(endpointId).hostIfname];
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
