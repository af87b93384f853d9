/**
 * The use cases behind Docker's plugin protocol, in the protocol's own terms
 * but with decoded, typed arguments. `api/` decodes the wire JSON into these
 * and encodes the results; it holds no other logic.
 */
import type { PortMapping } from '../model';

/** Address space names reported to dockerd (it echoes them back in RequestPool); a sluice network must use one. */
export const ADDRESS_SPACE_LOCAL = 'sluice-local';
export const ADDRESS_SPACE_GLOBAL = 'sluice-global';

export interface RequestPoolRequest {
  /** CIDR from `--subnet`, or undefined to pick a free one. */
  pool?: string;
  /** CIDR from `--ip-range`. */
  subPool?: string;
  /** `--ipam-opt` key/values. */
  options: Record<string, string>;
  v6: boolean;
}

export interface RequestPoolResult {
  poolId: string;
  /** CIDR. */
  pool: string;
  /** E.g. {"com.docker.network.gateway": "10.96.0.1/16"}. */
  data: Record<string, string>;
}

export interface RequestAddressRequest {
  poolId: string;
  /** Plain IP for `--ip`, `--gateway` or `--aux-address`; undefined for any. */
  address?: string;
  /** "com.docker.network.gateway" for the gateway request, undefined otherwise. */
  requestType?: string;
}

export interface IpamService {
  requestPool(req: RequestPoolRequest): Promise<RequestPoolResult>;
  releasePool(poolId: string): Promise<void>;
  /** Returns the address in CIDR form with the pool's prefix length. */
  requestAddress(req: RequestAddressRequest): Promise<{ address: string }>;
  releaseAddress(poolId: string, address: string): Promise<void>;
}

export interface IpamData {
  addressSpace: string;
  /** CIDR. */
  pool: string;
  /** CIDR, e.g. "10.96.0.1/16". */
  gateway?: string;
  auxAddresses: Record<string, string>;
}

export interface CreateNetworkRequest {
  networkId: string;
  /** `docker network create -o k=v` options. */
  generic: Record<string, string>;
  internal: boolean;
  ipv6: boolean;
  ipv4Data: IpamData[];
  ipv6Data: IpamData[];
}

export interface CreateEndpointRequest {
  networkId: string;
  endpointId: string;
  /** CIDR from IPAM. */
  address?: string;
  addressIPv6?: string;
  macAddress?: string;
  portMappings: PortMapping[];
  /** Per-endpoint driver options (`--driver-opt`). */
  driverOptions: Record<string, string>;
}

export interface JoinRequest {
  networkId: string;
  endpointId: string;
  sandboxKey: string;
  portMappings: PortMapping[];
}

export interface StaticRoute {
  destination: string;
  /** 0 = via next hop, 1 = connected. */
  routeType: 0 | 1;
  nextHop?: string;
}

export interface JoinResult {
  /** Host-namespace link Docker moves into the container and renames eth<N>. */
  srcName: string;
  dstPrefix: string;
  gateway: string;
  /** On a dual-stack network: its IPv6 gateway, which Docker makes the container's IPv6 default route. */
  gatewayIPv6?: string;
  staticRoutes: StaticRoute[];
  disableGatewayService: boolean;
}

export interface NetworkService {
  createNetwork(req: CreateNetworkRequest): Promise<void>;
  deleteNetwork(networkId: string): Promise<void>;
  createEndpoint(req: CreateEndpointRequest): Promise<{ macAddress?: string }>;
  deleteEndpoint(networkId: string, endpointId: string): Promise<void>;
  endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>>;
  join(req: JoinRequest): Promise<JoinResult>;
  leave(networkId: string, endpointId: string): Promise<void>;
  programExternalConnectivity(networkId: string, endpointId: string, portMappings: PortMapping[]): Promise<void>;
  revokeExternalConnectivity(networkId: string, endpointId: string): Promise<void>;
}
