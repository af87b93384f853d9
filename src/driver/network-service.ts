/**
 * Docker's network-driver calls: map Docker's per-host NetworkID to the
 * cluster network, record endpoints in the store, plumb veths through the
 * dataplane and tell the local agent, whose firewall apply the join waits
 * for: a container never starts before its policy is in force.
 */
import { BadRequestError, NotFoundError, NotSupportedError } from '../errors';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../model';
import { blockOf, formatCidr, parseCidr, parseIp } from '../net/ipv4';
import { containerMac, endpointIfnames } from '../dataplane/names';
import type { Dataplane } from '../dataplane/dataplane';
import type { Ipam } from '../ipam/ipam-service';
import type { Registry } from '../store/registry';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  JoinRequest,
  JoinResult,
  NetworkService,
} from './services';

/**
 * Mappings Sluice can publish: tcp and udp with an explicit host port.
 * (`-p 80` without a host port would need a host port allocator; not yet.)
 */
function publishable(ports: PortMapping[]): PortMapping[] {
  return ports.filter((p) => p.proto !== 'sctp' && p.hostPort > 0);
}

export const ADDRESS_SPACE_LOCAL = 'sluice-local';
export const ADDRESS_SPACE_GLOBAL = 'sluice-global';

/** Which container holds an endpoint, learned from Docker without taking the container lock. */
export interface ContainerIdentity {
  containerId: string;
  containerName: string;
  labels: Labels;
}

export interface ContainerLookup {
  /** Resolves the container joining `endpointId`, or undefined if Docker cannot tell yet. */
  containerOf(dockerNetworkId: string, endpointId: string): Promise<ContainerIdentity | undefined>;
}

/** The local agent: keeps this host's routes and firewall in line with the store. */
export interface LocalConvergence {
  /** Takes the endpoint (or its removal) into account; resolves once the firewall reflects it. */
  endpointChanged(endpoint: EndpointRecord, removed?: boolean): Promise<void>;
  /** A Docker network of this host was created or removed. */
  networksChanged(): Promise<void>;
  /** The network behind a Docker network ID of this host, as the agent's view has it (saves store reads on every start). */
  knownNetwork(dockerNetworkId: string): NetworkRecord | undefined;
}

export interface NetworkDriverOptions {
  node: string;
  mtu: number;
}

export class NetworkDriver implements NetworkService {
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
    const network = await this.registry.getNetwork(data.pool.replace('/', '-'));
    if (!network) throw new NotFoundError(`CreateNetwork: sluice IPAM has no pool ${data.pool}; was it released meanwhile?`);
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
    const names = endpointIfnames(req.endpointId);
    const address = req.address.split('/')[0]!;
    const mac = req.macAddress ?? containerMac(address);
    const endpoint: EndpointRecord = {
      id: req.endpointId,
      network: network.key,
      node: this.options.node,
      address,
      hostIfname: names.hostIfname,
      labels: null,
      ports: publishable(req.portMappings),
    };
    // Independent steps side by side; the veth is ready before Join asks for it.
    await Promise.all([
      this.registry.putEndpoint(endpoint),
      this.noteEndpointOnAddress(network, endpoint),
      this.dataplane.addEndpoint({ ...names, address, mac, mtu: this.options.mtu }),
    ]);
    // Docker sets this MAC on the interface it moves into the container (unless the user gave one).
    return { macAddress: mac };
  }

  async deleteEndpoint(_networkId: string, endpointId: string): Promise<void> {
    const endpoint = await this.registry.getEndpoint(this.options.node, endpointId);
    await this.dataplane.removeEndpoint(endpointIfnames(endpointId).hostIfname);
    if (!endpoint) return;
    await this.registry.deleteEndpoint(this.options.node, endpointId);
    await this.local.endpointChanged(endpoint.record, true);
  }

  async endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>> {
    const endpoint = await this.endpointOf(networkId, endpointId);
    return { 'sluice.node': endpoint.node, 'sluice.host_ifname': endpoint.hostIfname };
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const network = await this.networkOf(req.networkId);
    const names = endpointIfnames(req.endpointId);
    const [endpoint, identity] = await Promise.all([
      this.endpointOf(req.networkId, req.endpointId),
      this.containers.containerOf(req.networkId, req.endpointId).catch(() => undefined),
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
      gateway: network.gateway,
      staticRoutes: [],
      disableGatewayService: true,
    };
  }

  async leave(networkId: string, endpointId: string): Promise<void> {
    await this.endpointOf(networkId, endpointId);
    await this.dataplane.removeEndpoint(endpointIfnames(endpointId).hostIfname);
  }

  async programExternalConnectivity(networkId: string, endpointId: string, portMappings: PortMapping[]): Promise<void> {
    await this.setPorts(networkId, endpointId, publishable(portMappings));
  }

  async revokeExternalConnectivity(networkId: string, endpointId: string): Promise<void> {
    const endpoint = await this.registry.getEndpoint(this.options.node, endpointId);
    if (!endpoint) return; // revoke after a restart that already cleaned up: nothing to undo
    await this.setPorts(networkId, endpointId, []);
  }

  private async setPorts(networkId: string, endpointId: string, ports: PortMapping[]): Promise<void> {
    const endpoint = await this.endpointOf(networkId, endpointId);
    const updated = { ...endpoint, ports };
    await this.registry.putEndpoint(updated);
    await this.local.endpointChanged(updated);
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

  private async endpointOf(dockerNetworkId: string, endpointId: string): Promise<EndpointRecord> {
    const endpoint = await this.registry.getEndpoint(this.options.node, endpointId);
    if (!endpoint) {
      throw new NotFoundError(
        `unknown endpoint ${endpointId.slice(0, 12)} on network ${dockerNetworkId.slice(0, 12)}: it was never created here or was already removed`,
      );
    }
    return endpoint.record;
  }

  /** Records the endpoint on its address claim so a leaked address can be traced to its holder. */
  private async noteEndpointOnAddress(network: NetworkRecord, endpoint: EndpointRecord): Promise<void> {
    const block = formatCidr(blockOf(parseIp(endpoint.address)!, network.blockSize));
    const held = await this.registry.getAddress(network.key, block, endpoint.address);
    if (!held) return;
    await this.registry.updateAddress(block, { ...held.record, endpointId: endpoint.id }, held.modRevision);
  }
}
