/**
 * Docker's network-driver calls: map Docker's per-host NetworkID to the
 * cluster network, record endpoints in the store, plumb veths through the
 * dataplane and tell the local agent, whose firewall apply the join waits
 * for: a container never starts before its policy is in force.
 *
 * One file: the calls of one class, each beside the undo of the steps it took
 * (removeVeth); the settings checks already live apart (network-settings.ts).
 */
import { BadRequestError, ConflictError, NotFoundError, NotSupportedError, errorMessage } from '../errors';
import type { AddressRecord, EndpointRecord, NetworkRecord, PortMapping } from '../model';
import * as ip from '../net/ip';
import { cidrKey } from '../store/keys';
import { containerMac, endpointIfnames } from '../firewall/names';
import type { Dataplane } from '../dataplane/dataplane';
import type { Ipam } from '../ipam/ipam-service';
import type { AddressClaimUpdate, Registry, Versioned } from '../store/registry';
import type { ContainerLookup } from '../labels/docker';
import { afterReply } from '../util/after-reply';
import { networkSettings, settingsMismatch, unpublishable } from './network-settings';
import {
  ADDRESS_SPACE_GLOBAL,
  ADDRESS_SPACE_LOCAL,
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type IpamData,
  type JoinRequest,
  type JoinResult,
  type NetworkService,
  type StaticRoute,
} from '../protocol/services';

/**
 * Mappings Sluice can publish. Join carries the sandbox's mappings even when
 * another network publishes them, so there the rest is left out rather than
 * refused.
 */
function publishable(ports: PortMapping[]): PortMapping[] {
  return ports.filter((p) => unpublishable([p]) === undefined);
}

/**
 * A container's routes into its IPv6 pool, through the gateway. Its address
 * comes with the pool's prefix, on-link: every neighbour would be asked for
 * by NDP, and the host answers for the gateway alone (proxy NDP has no
 * wildcard, as proxy ARP has). The pool's two halves, one bit longer, win
 * over that; the gateway itself is on-link. Kept with --internal: they stay
 * within the network.
 */
function ipv6PoolRoutes(pool: NetworkRecord): StaticRoute[] {
  const subnet = ip.parseCidr(pool.subnet)!;
  const halves = [subnet.base, subnet.base + ip.size(subnet) / 2n].map((base) => ip.formatCidr({ ...subnet, base, prefix: subnet.prefix + 1 }));
  return [{ destination: `${pool.gateway}/128`, routeType: 1 }, ...halves.map((destination) => ({ destination, routeType: 0 as const, nextHop: pool.gateway }))];
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
   * An endpoint of this host being created, or as the agent's view has it: every writer of this
   * host's endpoints puts them there at once, so it is missing only one whose creation the watch
   * has not brought yet.
   */
  knownEndpoint(endpointId: string): EndpointRecord | undefined;
  /**
   * An endpoint CreateEndpoint made, written to the store only by its Join: known, and its veth
   * no leftover, until endpointChanged or endpointRemoved.
   */
  endpointCreated(endpoint: EndpointRecord): void;
  /** An IPAM pool by key (a dual-stack network's IPv6 pool), as the agent's view has it. */
  knownPool(net: string): NetworkRecord | undefined;
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
  /**
   * The address claims of endpoints CreateEndpoint checked but did not write, by endpoint: Join
   * records each endpoint, labelled, with its addresses in one transaction, so a container start
   * writes its endpoint once. Nothing outside this host needs an endpoint before its container runs.
   */
  private readonly creating = new Map<string, [AddressClaim, ...AddressClaim[]]>();

  constructor(
    private readonly registry: Registry,
    private readonly ipam: Ipam,
    private readonly dataplane: Dataplane,
    private readonly containers: ContainerLookup,
    private readonly local: LocalConvergence,
    private readonly options: NetworkDriverOptions,
  ) {}

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const [data, ...more] = req.ipv4Data;
    const [data6, ...more6] = req.ipv6Data;
    if (!data || [data, ...req.ipv6Data].some((d) => d.addressSpace !== ADDRESS_SPACE_LOCAL && d.addressSpace !== ADDRESS_SPACE_GLOBAL)) {
      throw new BadRequestError(
        'sluice networks need sluice IPAM: docker network create -d sluice --ipam-driver sluice --subnet CIDR NAME',
      );
    }
    if (more.length > 0) throw new NotSupportedError('a sluice network has one IPv4 subnet: pass a single --subnet');
    if (more6.length > 0) throw new NotSupportedError('a sluice network has at most one IPv6 subnet: pass a single IPv6 --subnet');
    const network = await this.poolOf(data);
    const pool6 = data6 && (await this.poolOf(data6));
    const settings = networkSettings(req, data, pool6 && { ...data6, pool: pool6.subnet });
    if (pool6) await this.refuseSharedIpv6Pool(network, pool6);
    await this.ipam.settleNetwork(network.key, settings, (existing) => settingsMismatch(existing, settings));
    if (pool6) {
      // The IPv6 pool keeps its own --aux-address reservations, as IPv4's does.
      const settings6 = networkSettings(req, data6);
      await this.ipam.settleNetwork(pool6.key, settings6, (existing) => settingsMismatch(existing, settings6));
    }
    await this.registry.putDockerNet(this.options.node, req.networkId, network.key);
    await this.local.networksChanged();
  }

  /** The sluice IPAM pool Docker's `data` names. */
  private async poolOf(data: IpamData): Promise<NetworkRecord> {
    const subnet = ip.parseCidr(data.pool);
    const pool = subnet && (await this.registry.getNetwork(cidrKey(ip.formatCidr(subnet))));
    if (!pool) throw new NotFoundError(`CreateNetwork: sluice IPAM has no pool ${data.pool}; was it released meanwhile?`);
    return pool.record;
  }

  /**
   * An IPv6 pool is one network's: two networks sharing it would be one
   * network to IPv6's firewall and two to IPv4's. (Checked, not raced: two
   * first creates of different networks with one IPv6 subnet at the same
   * moment on two hosts would both pass.)
   */
  private async refuseSharedIpv6Pool(network: NetworkRecord, pool6: NetworkRecord): Promise<void> {
    const other = (await this.registry.listNetworks()).find((n) => n.key !== network.key && n.settings?.ipv6Subnet === pool6.subnet);
    if (other) {
      throw new ConflictError(`IPv6 subnet ${pool6.subnet} belongs to sluice network ${other.name ?? other.subnet}: give this network an IPv6 subnet of its own`);
    }
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = await this.registry.getDockerNet(this.options.node, networkId);
    if (net === undefined) return; // already gone: Docker retries deletes after restarts
    await this.registry.deleteDockerNet(this.options.node, networkId);
    const ipv6Subnet = (await this.registry.getNetwork(net))?.record.settings?.ipv6Subnet;
    const pools = [net, ...(ipv6Subnet === undefined ? [] : [cidrKey(ipv6Subnet)])];
    const stillHere = (await this.registry.listDockerNets(this.options.node)).some((d) => d.network === net);
    if (!stillHere) for (const pool of pools) await this.ipam.releaseBlocks(pool);
    for (const pool of pools) await this.ipam.releasePool(pool);
    await this.local.networksChanged();
  }

  async createEndpoint(req: CreateEndpointRequest): Promise<{ macAddress?: string }> {
    const network = await this.networkOf(req.networkId);
    if (!req.address) {
      throw new BadRequestError(
        'CreateEndpoint without an address: the network must use sluice IPAM (--ipam-driver sluice)',
      );
    }
    refuseUnpublishable(req.portMappings);
    const names = endpointIfnames(req.endpointId);
    const pool6 = req.addressIPv6 ? await this.ipv6PoolOf(network) : undefined;
    const [claim, claim6] = await Promise.all([
      this.addressClaimFor(network, req.endpointId, req.address),
      pool6 && this.addressClaimFor(pool6, req.endpointId, req.addressIPv6!),
    ]);
    const claims: [AddressClaim, ...AddressClaim[]] = claim6 ? [claim, claim6] : [claim];
    const address = claim.held.record.address;
    const addressV6 = claim6?.held.record.address;
    const mac = req.macAddress ?? containerMac(address);
    const endpoint: EndpointRecord = {
      id: req.endpointId,
      network: network.key,
      node: this.options.node,
      address,
      ...(addressV6 !== undefined && { addressV6 }),
      hostIfname: names.hostIfname,
      labels: null,
      ports: req.portMappings,
    };
    this.creating.set(endpoint.id, claims);
    this.local.endpointCreated(endpoint);
    // The veth is made while Docker goes on to Join, which waits for it; a failure reaches Docker
    // through Join, which then deletes the endpoint. Its name in use (endpoint IDs sharing their
    // first 11 digits) is such a failure: the kernel refuses the name, atomically.
    const plumbed = afterReply().then(() =>
      this.dataplane.addEndpoint({
        ...names,
        address,
        ...(addressV6 !== undefined && { addressV6, gatewayV6: pool6!.gateway }),
        mac,
        mtu: network.settings?.mtu ?? this.local.mtu,
      }),
    );
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
    this.creating.delete(endpointId);
    const { hostIfname } = endpoint;
    // Docker skips Join after some failures, and Leave after a failed Join: the veth may be in the making still,
    // and the record may or may not have been written (a Join that failed on the store): deleted either way.
    // A veth whose name was in use is another's: left alone.
    const vethMade = (await this.plumbing.get(endpointId)?.then(() => true, (err: unknown) => !(err instanceof ConflictError))) ?? true;
    this.plumbing.delete(endpointId);
    if (!this.leaving.delete(hostIfname) && vethMade) this.removeVeth(hostIfname);
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
    // Kept until Join succeeds: the DeleteEndpoint after a failed one must know whether the veth is this endpoint's.
    const plumbed = this.plumbing.get(req.endpointId);
    const claims = this.creating.get(req.endpointId);
    const [endpoint, identity, pool6] = await Promise.all([
      this.endpointOf(req.networkId, req.endpointId),
      // Docker not answering must not fail Join: the endpoint stays fail-closed until the resync learns its labels.
      this.containers.containerOf(req.networkId, req.endpointId).catch(() => undefined),
      network.settings?.ipv6Subnet === undefined ? undefined : this.ipv6PoolOf(network),
      // The veth is there before the firewall takes the endpoint in: one that failed leaves nothing in force.
      plumbed,
    ]);
    const internal = network.settings?.internal === true;
    const ports = publishable(req.portMappings);
    const joined: EndpointRecord = {
      ...endpoint,
      ...(identity && { containerId: identity.containerId, containerName: identity.containerName, labels: identity.labels }),
      ports: ports.length > 0 ? ports : endpoint.ports,
    };
    // The firewall for this endpoint is in force before Docker starts the container. A failure
    // leaves the endpoint to the DeleteEndpoint Docker sends next.
    const recorded = claims ? this.recordOnAddresses(claims, joined) : this.registry.putEndpoint(joined);
    await Promise.all([recorded, this.local.endpointChanged(joined)]);
    this.creating.delete(req.endpointId);
    this.plumbing.delete(req.endpointId);
    return {
      srcName: names.containerIfname,
      dstPrefix: 'eth',
      // --internal: no gateway, so no default route out of the cluster's networks (Docker's bridge does the same).
      gateway: internal ? '' : network.gateway,
      ...(pool6 && !internal && { gatewayIPv6: pool6.gateway }),
      // ...but the resolver must stay reachable: a link route, answered by the host's proxy ARP.
      staticRoutes: [
        ...(internal ? [{ destination: `${this.options.dnsAddress}/32`, routeType: 1 as const }] : []),
        ...(pool6 ? ipv6PoolRoutes(pool6) : []),
      ],
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

  /** An endpoint of this host: from the agent, from the store if the agent does not know it (yet). */
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

  /** The IPv6 pool of a dual-stack network. */
  private async ipv6PoolOf(network: NetworkRecord): Promise<NetworkRecord> {
    const subnet = network.settings?.ipv6Subnet;
    if (subnet === undefined) throw new BadRequestError(`network ${network.name ?? network.subnet} has no IPv6 subnet: it was created without --ipv6`);
    const key = cidrKey(subnet);
    const pool = this.local.knownPool(key) ?? (await this.registry.getNetwork(key))?.record;
    if (!pool) throw new NotFoundError(`the IPv6 pool ${subnet} of network ${network.name ?? network.subnet} is gone from the store`);
    return pool;
  }

  /**
   * The address claim CreateEndpoint may use: IPAM handed `cidr` out in this
   * pool, to this node, and no other endpoint holds it.
   */
  private async addressClaimFor(pool: NetworkRecord, endpointId: string, cidr: string): Promise<AddressClaim> {
    const subnet = ip.parseCidr(pool.subnet)!;
    const [given = '', prefix] = cidr.split('/');
    const parsed = ip.parseIp(given);
    if (parsed === undefined || !ip.contains(subnet, parsed) || Number(prefix) !== subnet.prefix) {
      throw new BadRequestError(`CreateEndpoint: address ${cidr} is not in the network's subnet ${pool.subnet}`);
    }
    const address = ip.formatIp(parsed);
    const block = ip.formatCidr(ip.blockOf(parsed, pool.blockSize));
    // Claimed a moment ago by this host's RequestAddress, as a rule: then known without a store read.
    const held = this.ipam.takeClaim(pool.key, address) ?? (await this.registry.getAddress(pool.key, block, address));
    if (!held || held.record.kind !== 'endpoint' || held.record.node !== this.options.node) {
      throw new BadRequestError(
        `CreateEndpoint: address ${address} was not allocated to this node by sluice IPAM: request it with IpamDriver.RequestAddress first`,
      );
    }
    const holder = held.record.endpointId;
    if (holder !== undefined && holder !== endpointId) {
      throw new ConflictError(`CreateEndpoint: address ${address} is already held by endpoint ${holder.slice(0, 12)}`);
    }
    return { block, held };
  }

  /** Writes the endpoint and notes it on its address claims, in one transaction: a live container's addresses are then never released or reused. */
  private async recordOnAddresses(claims: [AddressClaim, ...AddressClaim[]], endpoint: EndpointRecord): Promise<void> {
    const named = ({ block, held }: AddressClaim): AddressClaimUpdate => ({ block, address: { ...held.record, endpointId: endpoint.id }, modRevision: held.modRevision });
    const [first, ...more] = claims;
    if (!(await this.registry.putEndpointOnAddresses(endpoint, [named(first), ...more.map(named)]))) {
      throw new ConflictError(`Join: address ${claims.map((c) => c.held.record.address).join(' or ')} changed since CreateEndpoint (released meanwhile?)`);
    }
  }
}

interface AddressClaim {
  block: string;
  held: Versioned<AddressRecord>;
}
