/**
 * The plugin protocol's JSON, as dockerd 20.10 writes and reads it: decoders
 * turn request bodies into the typed requests of `driver/services.ts`, and
 * encoders turn service results into replies with the exact Go field casing.
 *
 * What dockerd sends (docs/docker-plugin-protocol.md §1.3): Go field names in
 * PascalCase, `null` for nil maps and lists, `""` for nil IPs, an empty body
 * for argument-less calls and a trailing newline after the JSON. Decoders
 * check types and required fields only; CIDR and address checks belong to the
 * services. Every problem is a BadRequestError naming the method and field.
 */
import { BadRequestError } from '../errors';
import type { PortMapping, Protocol } from '../model';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  IpamData,
  JoinRequest,
  JoinResult,
  RequestAddressRequest,
  RequestPoolRequest,
  RequestPoolResult,
} from '../driver/services';

/** Option keys libnetwork itself puts in the request maps (`netlabel` in libnetwork). */
const OPT = {
  generic: 'com.docker.network.generic',
  internal: 'com.docker.network.internal',
  enableIpv6: 'com.docker.network.enable_ipv6',
  portmap: 'com.docker.network.portmap',
} as const;

/** Every Docker-defined option key starts with this; what remains in CreateEndpoint Options is `--driver-opt`. */
const DOCKER_OPTION_PREFIX = 'com.docker.network.';

/** libnetwork `types.Protocol` numbers (IANA protocol numbers). */
const PROTOCOLS: ReadonlyMap<unknown, Protocol> = new Map<unknown, Protocol>([
  [6, 'tcp'],
  [17, 'udp'],
  [132, 'sctp'],
]);

/**
 * Parses a raw request body. An empty (or whitespace-only) body, as dockerd
 * sends for argument-less calls, yields undefined.
 */
export function parseBody(method: string, raw: string): unknown {
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new BadRequestError(`malformed JSON in ${method} request: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'list' : typeof value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `Options.foo` for Go-style names, `Options["com.docker.network.portmap"]` for option keys. */
function childPath(parent: string, key: string): string {
  const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (parent === '') return name;
  return name.startsWith('[') ? parent + name : `${parent}.${name}`;
}

/** Reads the fields of one JSON object, naming each in errors by its path in the request. */
class Fields {
  constructor(
    private readonly method: string,
    private readonly obj: Record<string, unknown>,
    private readonly path = '',
  ) {}

  /** The request body itself; it must be a JSON object. */
  static body(method: string, body: unknown): Fields {
    if (body === undefined) throw new BadRequestError(`${method}: request body is empty`);
    if (!isObject(body)) throw new BadRequestError(`${method}: request body must be a JSON object, got ${typeName(body)}`);
    return new Fields(method, body);
  }

  fail(key: string, problem: string): never {
    this.failAt(childPath(this.path, key), problem);
  }

  private failAt(path: string, problem: string): never {
    throw new BadRequestError(`${this.method}: ${path} ${problem}`);
  }

  /** A value that must be present; absent and null are both "missing". */
  private present(key: string): unknown {
    const value = this.obj[key];
    if (value === undefined || value === null) this.fail(key, 'is missing');
    return value;
  }

  /** A required, non-empty string such as an ID. */
  id(key: string): string {
    const value = this.present(key);
    if (typeof value !== 'string') this.fail(key, `must be a string, got ${typeName(value)}`);
    if (value === '') this.fail(key, 'is empty');
    return value;
  }

  /** An optional string; Go's zero value "" (a nil IP or unset flag) counts as absent. */
  optionalString(key: string): string | undefined {
    const value = this.obj[key];
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string') this.fail(key, `must be a string, got ${typeName(value)}`);
    return value;
  }

  /** A string that must be present but may be empty. */
  string(key: string): string {
    const value = this.present(key);
    if (typeof value !== 'string') this.fail(key, `must be a string, got ${typeName(value)}`);
    return value;
  }

  /** An optional boolean; absent means false. */
  bool(key: string): boolean {
    const value = this.obj[key];
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') this.fail(key, `must be a boolean, got ${typeName(value)}`);
    return value;
  }

  /** A required integer in 0..65535 (Go uint16). */
  port(key: string): number {
    const value = this.present(key);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
      this.fail(key, `must be a port number (0-65535), got ${JSON.stringify(value)}`);
    }
    return value;
  }

  /** A nested object; absent or null (a nil Go map/pointer) reads as empty. */
  object(key: string): Fields {
    const value = this.obj[key];
    if (value === undefined || value === null) return new Fields(this.method, {}, childPath(this.path, key));
    if (!isObject(value)) this.fail(key, `must be an object, got ${typeName(value)}`);
    return new Fields(this.method, value, childPath(this.path, key));
  }

  /** A list of objects; absent or null (a nil Go slice) reads as empty. */
  list(key: string): Fields[] {
    const value = this.obj[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) this.fail(key, `must be a list, got ${typeName(value)}`);
    const path = childPath(this.path, key);
    return value.map((item: unknown, i) => {
      if (!isObject(item)) this.failAt(`${path}[${i}]`, `must be an object, got ${typeName(item)}`);
      return new Fields(this.method, item, `${path}[${i}]`);
    });
  }

  /** A string-to-string map; absent or null reads as empty. */
  stringMap(key: string): Record<string, string> {
    const nested = this.object(key);
    const out: Record<string, string> = {};
    for (const k of nested.keys()) out[k] = nested.string(k);
    return out;
  }

  keys(): string[] {
    return Object.keys(this.obj);
  }

  raw(key: string): unknown {
    return this.obj[key];
  }
}

// ---- Network driver requests ----------------------------------------------

export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

function ipamData(f: Fields): IpamData {
  const gateway = f.optionalString('Gateway');
  return {
    addressSpace: f.string('AddressSpace'),
    pool: f.id('Pool'),
    ...(gateway !== undefined && { gateway }),
    auxAddresses: f.stringMap('AuxAddresses'),
  };
}

export function decodeCreateNetwork(body: unknown): CreateNetworkRequest {
  const f = Fields.body('CreateNetwork', body);
  const options = f.object('Options');
  return {
    networkId: f.id('NetworkID'),
    generic: options.stringMap(OPT.generic),
    internal: options.bool(OPT.internal),
    ipv6: options.bool(OPT.enableIpv6),
    ipv4Data: f.list('IPv4Data').map(ipamData),
    ipv6Data: f.list('IPv6Data').map(ipamData),
  };
}

export function decodeDeleteNetwork(body: unknown): { networkId: string } {
  return { networkId: Fields.body('DeleteNetwork', body).id('NetworkID') };
}

/** DeleteEndpoint, EndpointOperInfo, Leave and RevokeExternalConnectivity carry only the two IDs. */
export function decodeEndpointRef(method: string, body: unknown): EndpointRef {
  const f = Fields.body(method, body);
  return { networkId: f.id('NetworkID'), endpointId: f.id('EndpointID') };
}

function portMapping(f: Fields): PortMapping {
  const protoNumber = f.raw('Proto');
  const proto = PROTOCOLS.get(protoNumber);
  if (proto === undefined) {
    if (protoNumber === undefined || protoNumber === null) f.fail('Proto', 'is missing');
    f.fail('Proto', `must be 6 (tcp), 17 (udp) or 132 (sctp), got ${JSON.stringify(protoNumber)}`);
  }
  const hostIp = f.optionalString('HostIP');
  return {
    proto,
    containerPort: f.port('Port'),
    ...(hostIp !== undefined && { hostIp }),
    hostPort: f.port('HostPort'),
    hostPortEnd: f.port('HostPortEnd'),
  };
}

function portMappings(options: Fields): PortMapping[] {
  return options.list(OPT.portmap).map(portMapping);
}

export function decodeCreateEndpoint(body: unknown): CreateEndpointRequest {
  const f = Fields.body('CreateEndpoint', body);
  const iface = f.object('Interface');
  const options = f.object('Options');
  // `--driver-opt` values arrive as flat string keys next to Docker's own.
  // Docker's keys (portmap, dnsservers, the base64 macaddress, newer ones)
  // are skipped by prefix; non-string values cannot be driver options.
  const driverOptions: Record<string, string> = {};
  for (const key of options.keys()) {
    const value = options.raw(key);
    if (!key.startsWith(DOCKER_OPTION_PREFIX) && typeof value === 'string') driverOptions[key] = value;
  }
  const address = iface.optionalString('Address');
  const addressIPv6 = iface.optionalString('AddressIPv6');
  const macAddress = iface.optionalString('MacAddress');
  return {
    networkId: f.id('NetworkID'),
    endpointId: f.id('EndpointID'),
    ...(address !== undefined && { address }),
    ...(addressIPv6 !== undefined && { addressIPv6 }),
    ...(macAddress !== undefined && { macAddress }),
    portMappings: portMappings(options),
    driverOptions,
  };
}

export function decodeJoin(body: unknown): JoinRequest {
  const f = Fields.body('Join', body);
  return {
    networkId: f.id('NetworkID'),
    endpointId: f.id('EndpointID'),
    sandboxKey: f.id('SandboxKey'),
    portMappings: portMappings(f.object('Options')),
  };
}

export function decodeProgramExternalConnectivity(body: unknown): EndpointRef & { portMappings: PortMapping[] } {
  const f = Fields.body('ProgramExternalConnectivity', body);
  return {
    networkId: f.id('NetworkID'),
    endpointId: f.id('EndpointID'),
    portMappings: portMappings(f.object('Options')),
  };
}

// ---- IPAM driver requests -------------------------------------------------

export function decodeRequestPool(body: unknown): RequestPoolRequest {
  const f = Fields.body('RequestPool', body);
  // AddressSpace is not decoded: Sluice serves its local and global spaces alike.
  const pool = f.optionalString('Pool');
  const subPool = f.optionalString('SubPool');
  return {
    ...(pool !== undefined && { pool }),
    ...(subPool !== undefined && { subPool }),
    options: f.stringMap('Options'),
    v6: f.bool('V6'),
  };
}

export function decodeReleasePool(body: unknown): { poolId: string } {
  return { poolId: Fields.body('ReleasePool', body).id('PoolID') };
}

export function decodeRequestAddress(body: unknown): RequestAddressRequest {
  const f = Fields.body('RequestAddress', body);
  const address = f.optionalString('Address');
  const requestType = f.object('Options').optionalString('RequestAddressType');
  return {
    poolId: f.id('PoolID'),
    ...(address !== undefined && { address }),
    ...(requestType !== undefined && { requestType }),
  };
}

export function decodeReleaseAddress(body: unknown): { poolId: string; address: string } {
  const f = Fields.body('ReleaseAddress', body);
  return { poolId: f.id('PoolID'), address: f.id('Address') };
}

// ---- Replies --------------------------------------------------------------

/** What every failure carries; dockerd reports it as "<Method>: <Err>". */
export interface ErrorReply {
  Err: string;
}

export interface CreateEndpointReply {
  Interface?: { MacAddress: string };
}

/**
 * libnetwork refuses a reply that changes an interface field it already set
 * ("driver modified interface ..."), so the MAC goes back only when the
 * request had none.
 */
export function encodeCreateEndpoint(req: CreateEndpointRequest, result: { macAddress?: string }): CreateEndpointReply {
  if (req.macAddress !== undefined || result.macAddress === undefined) return {};
  return { Interface: { MacAddress: result.macAddress } };
}

export interface EndpointOperInfoReply {
  Value: Record<string, unknown>;
}

export function encodeEndpointOperInfo(value: Record<string, unknown>): EndpointOperInfoReply {
  return { Value: value };
}

export interface JoinReply {
  InterfaceName: { SrcName: string; DstPrefix: string };
  /** Plain IP, not CIDR (libnetwork uses net.ParseIP). */
  Gateway: string;
  StaticRoutes: { Destination: string; RouteType: 0 | 1; NextHop: string }[];
  DisableGatewayService: boolean;
}

export function encodeJoin(result: JoinResult): JoinReply {
  return {
    InterfaceName: { SrcName: result.srcName, DstPrefix: result.dstPrefix },
    Gateway: result.gateway,
    StaticRoutes: result.staticRoutes.map((r) => ({
      Destination: r.destination,
      RouteType: r.routeType,
      NextHop: r.nextHop ?? '',
    })),
    DisableGatewayService: result.disableGatewayService,
  };
}

export interface RequestPoolReply {
  PoolID: string;
  Pool: string;
  Data: Record<string, string>;
}

export function encodeRequestPool(result: RequestPoolResult): RequestPoolReply {
  return { PoolID: result.poolId, Pool: result.pool, Data: result.data };
}

export interface RequestAddressReply {
  /** CIDR; its prefix length becomes the interface's netmask. */
  Address: string;
  Data: Record<string, string>;
}

export function encodeRequestAddress(result: { address: string }): RequestAddressReply {
  return { Address: result.address, Data: {} };
}
