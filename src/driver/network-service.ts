/**
 * Docker's network-driver calls: map Docker's per-host NetworkID to the
 * cluster network, record endpoints in the store, plumb veths through the
 * dataplane and tell the local agent, whose firewall apply the join waits
 * for: a container never starts before its policy is in force.
 *
 * One file: the calls of one class, each beside the undo of the steps it took
 * (undoCreateEndpoint, removeVeth); the settings checks already live apart
 * (network-settings.ts).
 */
import { BadRequestError, ConflictError, NotFoundError, NotSupportedError, errorMessage } from '../errors';
import type { AddressRecord, EndpointRecord, NetworkRecord, PortMapping } from '../model';
import { blockOf, contains, formatCidr, parseCidr, parseIp } from '../net/ipv4';
import { containerMac, endpointIfnames } from '../firewall/names';
import type { Dataplane } from '../dataplane/dataplane';
import type { Ipam } from '../ipam/ipam-service';
import type { Registry, Versioned } from '../store/registry';
import type { ContainerLookup } from '../labels/docker';
import { afterReply } from '../util/after-reply';
import { networkSettings, settingsMismatch, unpublishable } from './network-settings';
import {
  ADDRESS_SPACE_GLOBAL,
  ADDRESS_SPACE_LOCAL,
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type JoinRequest,
  type JoinResult,
  type NetworkService,
} from '../protocol/services';

/**
 * Mappings Sluice can publish. Join carries the sandbox's mappings even when
 * another network publishes them, so there the rest is left out rather than
 * refused.
 */
function publishable(ports: PortMapping[]): PortMapping[] {
  return ports.filter((p) => unpublishable([p]) === undefined);
}

function samePorts(a: PortMapping[], b: PortMapping[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** CreateEndpoint and ProgramExternalConnectivity ask Sluice itself to publish: what it cannot is refused. */
function refuseUnpublishable(ports: PortMapping[]): void {
  const why = unpublishable(ports);
  if (why !== undefined) throw new NotSupportedError(why);
}

/** The local agent: keeps this host's routes and firewall in line with the store. */
export interface LocalConvergence {
  /** Takes the endpoint into account; resolves once the firewall reflects it. */
  endpointChanged(endpoint: EndpointRecord): Promise<void>;
  /** Forgets the endpoint at once and starts an apply that drops it from the firewall, without waiting for it. */
  endpointRemoved(endpoint: EndpointRecord): void;
  /** A Docker network of this host was created or removed. */
  networksChanged(): Promise<void>;
  /** Container MTU unless the network sets one: known once the agent has measured the underlay. */
  readonly mtu: number;
  /** The network behind a Docker network ID of this host, as the agent's view has it (saves store reads on every start). */
  knownNetwork(dockerNetworkId: string): NetworkRecord | undefined;
  /**
   * An endpoint of this host as the agent's view has it: every writer of this host's endpoints
   * puts them there at once, so it is missing only one whose creation the watch has not brought yet.
   */
  knownEndpoint(endpointId: string): EndpointRecord | undefined;
}

export interface NetworkDriverOptions {
  node: string;
  /** The name resolver's address, held by this host (see dns/). */
  dnsAddress: string;
}

export class NetworkDriver implements NetworkService {
  /** Veths whose removal Leave started, so DeleteEndpoint does not start it again. */
  private readonly leaving = new Set<string>();
  /**
   * Veths CreateEndpoint started making, by endpoint: Join waits for its veth beside the
   * firewall apply, and the kernel's work overlaps Docker's own in between. Each settles.
   */
  private readonly plumbing = new Map<string, Promise<unknown>>();

  constructor(
    private readonly registry: Registry,
    private readonly ipam: Ipam,
    private readonly dataplane: Dataplane,
    private readonly containers: ContainerLookup,
    private readonly local: LocalConvergence,
    private readonly options: NetworkDriverOptions,
  ) {}

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    if (req.ipv6 || req.ipv6Data.length > 0) {
      throw new NotSupportedError('IPv6 is not supported by sluice yet: create the network without --ipv6');
    }
    const [data, ...more] = req.ipv4Data;
    if (!data || (data.addressSpace !== ADDRESS_SPACE_LOCAL && data.addressSpace !== ADDRESS_SPACE_GLOBAL)) {
      throw new BadRequestError(
        'sluice networks need sluice IPAM: docker network create -d sluice --ipam-driver sluice --subnet CIDR NAME',
      );
    }
    if (more.length > 0) throw new NotSupportedError('a sluice network has one IPv4 subnet: pass a single --subnet');
    const subnet = parseCidr(data.pool);
    if (!subnet) throw new BadRequestError(`CreateNetwork: pool "${data.pool}" is not an IPv4 CIDR`);
    const settings = networkSettings(req, data);
    const network = await this.registry.getNetwork(data.pool.replace('/', '-'));
    if (!network) throw new NotFoundError(`CreateNetwork: sluice IPAM has no pool ${data.pool}; was it released meanwhile?`);
    await this.ipam.settleNetwork(network.record.key, settings, (existing) => settingsMismatch(existing, settings));
    await this.registry.putDockerNet(this.options.node, req.networkId, network.record.key);
    await this.local.networksChanged();
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = await this.registry.getDockerNet(this.options.node, networkId);
    if (net === undefined) return; // already gone: Docker retries deletes after restarts
    await this.registry.deleteDockerNet(this.options.node, networkId);
    const stillHere = (await this.registry.listDockerNets(this.options.node)).some((d) => d.network === net);
    if (!stillHere) await this.ipam.releaseBlocks(net);
    await this.ipam.releasePool(net);
    await this.local.networksChanged();
  }

  async createEndpoint(req: CreateEndpointRequest): Promise<{ macAddress?: string }> {
    const network = await this.networkOf(req.networkId);
    if (req.addressIPv6) throw new NotSupportedError('IPv6 is not supported by sluice yet');
    if (!req.address) {
      throw new BadRequestError(
        'CreateEndpoint without an address: the network must use sluice IPAM (--ipam-driver sluice)',
      );
    }
    refuseUnpublishable(req.portMappings);
    const names = endpointIfnames(req.endpointId);
    const address = req.address.split('/')[0]!;
    const claim = await this.addressClaimFor(network, req.endpointId, req.address, names.hostIfname);
    const mac = req.macAddress ?? containerMac(address);
    const endpoint: EndpointRecord = {
      id: req.endpointId,
      network: network.key,
      node: this.options.node,
      address,
      hostIfname: names.hostIfname,
      labels: null,
      ports: req.portMappings,
    };
    try {
      await this.recordOnAddress(claim, endpoint);
    } catch (err) {
      // Docker releases the address next; nothing of this endpoint may outlive the failure.
      await this.undoCreateEndpoint(endpoint, claim.block);
      throw err;
    }
    // The veth is made while Docker goes on to Join, which waits for it; a failure reaches Docker
    // through Join, which then deletes the endpoint.
    const plumbed = afterReply().then(() => this.dataplane.addEndpoint({ ...names, address, mac, mtu: network.settings?.mtu ?? this.local.mtu }));
    // Handled from here on, so a failure Join has not awaited yet is no unhandled rejection.
    plumbed.catch(() => undefined);
    this.plumbing.set(endpoint.id, plumbed);
    // Docker sets this MAC on the interface it moves into the container (unless the user gave one).
    return { macAddress: mac };
  }

  /** Removes an endpoint of this host by its full ID; an unknown ID touches nothing (its veth may be another's). */
  async deleteEndpoint(_networkId: string, endpointId: string): Promise<void> {
    const endpoint = await this.findEndpoint(endpointId);
    if (!endpoint) return; // already gone: Docker repeats deletes after restarts
    const { hostIfname } = endpoint;
    // Docker skips Join after some failures, and Leave after a failed Join: the veth may be in the making still.
    await this.plumbing.get(endpointId)?.catch(() => undefined);
    this.plumbing.delete(endpointId);
    if (!this.leaving.delete(hostIfname)) this.removeVeth(hostIfname);
    await this.registry.deleteEndpoint(this.options.node, endpointId);
    // Not waiting for the firewall to drop it is safe: its veth is going, its container gone, so
    // nothing sends from or to it, and its address is only handed out again after this (Docker's
    // ReleaseAddress follows). The next Join, whoever gets the address, waits for an apply that
    // started after its own call, so one that already leaves this endpoint out: a reused address
    // never meets this endpoint's policy. A new veth for the address takes its /32 route over at
    // once (route replace), whatever is left of this one's teardown.
    this.local.endpointRemoved(endpoint);
  }

  async endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>> {
    const endpoint = await this.endpointOf(networkId, endpointId);
    return { 'sluice.node': endpoint.node, 'sluice.host_ifname': endpoint.hostIfname };
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const network = await this.networkOf(req.networkId);
    const names = endpointIfnames(req.endpointId);
    const plumbed = this.plumbing.get(req.endpointId);
    this.plumbing.delete(req.endpointId);
    const [endpoint, identity] = await Promise.all([
      this.endpointOf(req.networkId, req.endpointId),
      // Docker not answering must not fail Join: the endpoint stays fail-closed until the resync learns its labels.
      this.containers.containerOf(req.networkId, req.endpointId).catch(() => undefined),
      // The veth is there before the firewall takes the endpoint in: one that failed leaves nothing in force.
      plumbed,
    ]);
    const ports = publishable(req.portMappings);
    const joined: EndpointRecord = {
      ...endpoint,
      ...(identity && { containerId: identity.containerId, containerName: identity.containerName, labels: identity.labels }),
      ports: ports.length > 0 ? ports : endpoint.ports,
    };
    // The firewall for this endpoint is in force before Docker starts the container.
    await Promise.all([this.registry.putEndpoint(joined), this.local.endpointChanged(joined)]);
    return {
      srcName: names.containerIfname,
      dstPrefix: 'eth',
      // --internal: no gateway, so no default route out of the cluster's networks (Docker's bridge does the same).
      gateway: network.settings?.internal === true ? '' : network.gateway,
      // ...but the resolver must stay reachable: a link route, answered by the host's proxy ARP.
      staticRoutes: network.settings?.internal === true ? [{ destination: `${this.options.dnsAddress}/32`, routeType: 1 }] : [],
      disableGatewayService: true,
    };
  }

  async leave(networkId: string, endpointId: string): Promise<void> {
    const { hostIfname } = await this.endpointOf(networkId, endpointId);
    this.leaving.add(hostIfname);
    this.removeVeth(hostIfname);
  }

  async programExternalConnectivity(networkId: string, endpointId: string, portMappings: PortMapping[]): Promise<void> {
    refuseUnpublishable(portMappings);
    if (this.portsAlready(endpointId, portMappings)) return;
    await this.setPorts(await this.storedEndpointOf(networkId, endpointId), portMappings);
  }

  async revokeExternalConnectivity(_networkId: string, endpointId: string): Promise<void> {
    if (this.portsAlready(endpointId, [])) return;
    const endpoint = await this.registry.getEndpoint(this.options.node, endpointId);
    if (!endpoint) return; // revoke after a restart that already cleaned up: nothing to undo
    await this.setPorts(endpoint.record, []);
  }

  /**
   * Docker programs and revokes every container's ports, most with none: what changes nothing
   * costs no store read, no write and no apply. A change is made on the record as stored.
   */
  private portsAlready(endpointId: string, ports: PortMapping[]): boolean {
    const known = this.local.knownEndpoint(endpointId);
    return known !== undefined && samePorts(known.ports, ports);
  }

  private async setPorts(endpoint: EndpointRecord, ports: PortMapping[]): Promise<void> {
    if (samePorts(endpoint.ports, ports)) return;
    const updated = { ...endpoint, ports };
    await this.registry.putEndpoint(updated);
    await this.local.endpointChanged(updated);
  }

  /**
   * Removes a veth once the reply is out: the kernel's teardown of a veth takes ~10 ms that nobody
   * needs to wait for. One that fails (it never has) is left over, and the next reconciliation
   * with Docker removes it, as it removes every veth without an endpoint record.
   */
  private removeVeth(hostIfname: string): void {
    afterReply().then(() => this.dataplane.removeEndpoint(hostIfname)).catch((err: unknown) => {
      console.error(`sluice agent: removing veth ${hostIfname} failed (${errorMessage(err)}); the next reconciliation with Docker retries`);
    });
  }

  private async networkOf(dockerNetworkId: string): Promise<NetworkRecord> {
    const known = this.local.knownNetwork(dockerNetworkId);
    if (known) return known;
    const net = await this.registry.getDockerNet(this.options.node, dockerNetworkId);
    const network = net === undefined ? undefined : await this.registry.getNetwork(net);
    if (!network) {
      throw new NotFoundError(
        `unknown network ${dockerNetworkId.slice(0, 12)}: sluice has no record of it on this host (remove and re-create it with docker network create -d sluice --ipam-driver sluice)`,
      );
    }
    return network.record;
  }

  /** An endpoint of this host: from the agent's view, from the store if the view does not have it (yet). */
  private async findEndpoint(endpointId: string): Promise<EndpointRecord | undefined> {
    return this.local.knownEndpoint(endpointId) ?? (await this.registry.getEndpoint(this.options.node, endpointId))?.record;
  }

  private async endpointOf(dockerNetworkId: string, endpointId: string): Promise<EndpointRecord> {
    return this.local.knownEndpoint(endpointId) ?? this.storedEndpointOf(dockerNetworkId, endpointId);
  }

  private async storedEndpointOf(dockerNetworkId: string, endpointId: string): Promise<EndpointRecord> {
    const endpoint = await this.registry.getEndpoint(this.options.node, endpointId);
    if (!endpoint) {
      throw new NotFoundError(
        `unknown endpoint ${endpointId.slice(0, 12)} on network ${dockerNetworkId.slice(0, 12)}: it was never created here or was already removed`,
      );
    }
    return endpoint.record;
  }

  /**
   * The address claim CreateEndpoint may use: IPAM handed `cidr` out in this
   * network, to this node, and no other endpoint holds it or the veth name
   * the ID gives (IDs sharing their first 11 digits would share a veth).
   */
  private async addressClaimFor(
    network: NetworkRecord,
    endpointId: string,
    cidr: string,
    hostIfname: string,
  ): Promise<AddressClaim> {
    const subnet = parseCidr(network.subnet)!;
    const [address = '', prefix] = cidr.split('/');
    const ip = parseIp(address);
    if (ip === undefined || !contains(subnet, ip) || Number(prefix) !== subnet.prefix) {
      throw new BadRequestError(`CreateEndpoint: address ${cidr} is not in the network's subnet ${network.subnet}`);
    }
    const block = formatCidr(blockOf(ip, network.blockSize));
    const [held, local] = await Promise.all([
      this.registry.getAddress(network.key, block, address),
      this.registry.listEndpoints(this.options.node),
    ]);
    if (!held || held.record.kind !== 'endpoint' || held.record.node !== this.options.node) {
      throw new BadRequestError(
        `CreateEndpoint: address ${address} was not allocated to this node by sluice IPAM: request it with IpamDriver.RequestAddress first`,
      );
    }
    const holder = held.record.endpointId;
    if (holder !== undefined && holder !== endpointId) {
      throw new ConflictError(`CreateEndpoint: address ${address} is already held by endpoint ${holder.slice(0, 12)}`);
    }
    const clash = local.find((e) => e.id !== endpointId && e.hostIfname === hostIfname);
    if (clash) {
      throw new ConflictError(
        `CreateEndpoint: endpoint ${endpointId.slice(0, 12)} would share veth ${hostIfname} with endpoint ${clash.id.slice(0, 12)}`,
      );
    }
    return { block, held };
  }

  /** Writes the endpoint and notes it on its address claim, in one transaction: a live container's address is then never released or reused. */
  private async recordOnAddress({ block, held }: AddressClaim, endpoint: EndpointRecord): Promise<void> {
    if (!(await this.registry.putEndpointOnAddress(endpoint, block, { ...held.record, endpointId: endpoint.id }, held.modRevision))) {
      throw new ConflictError(`CreateEndpoint: address ${held.record.address} changed meanwhile (another CreateEndpoint for it?)`);
    }
  }

  /** Takes back what a failed CreateEndpoint recorded (its veth is made only after), so the ReleaseAddress Docker sends next succeeds. */
  private async undoCreateEndpoint(endpoint: EndpointRecord, block: string): Promise<void> {
    // Settled, not awaited for failure: the CreateEndpoint error is the one Docker must see, and
    // what an undo step could not remove is a leftover that reconciliation with Docker removes.
    await Promise.allSettled([
      this.registry.deleteEndpoint(endpoint.node, endpoint.id),
      this.registry.getAddress(endpoint.network, block, endpoint.address).then(async (now) => {
        if (now?.record.endpointId !== endpoint.id) return;
        const { endpointId: _, ...free } = now.record;
        await this.registry.updateAddress(block, free, now.modRevision);
      }),
    ]);
  }
}

interface AddressClaim {
  block: string;
  held: Versioned<AddressRecord>;
}
