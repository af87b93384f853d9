/**
 * The plugin protocol's JSON, as dockerd 20.10 writes and reads it: decoders
 * turn request bodies into the typed requests of `protocol/services.ts`, and
 * encoders turn service results into replies with the exact Go field casing.
 *
 * What dockerd sends (docs/docker-plugin-protocol.md §1.3): Go field names in
 * PascalCase, `null` for nil maps and lists, `""` for nil IPs, an empty body
 * for argument-less calls and a trailing newline after the JSON.
 *
 * Decoding is strict: every field that can reach a store key, a kernel
 * command or a firewall rule is checked for its exact form here (Docker IDs
 * are 64 hex digits, addresses parse, ports are in range), so a request
 * carrying a separator or garbage is refused before anything happens. Whether
 * a well-formed value fits the state (an address allocated to this node, a
 * known endpoint) is for the services. Every problem is a BadRequestError
 * naming the method and field.
 *
 * One file: every decoder reads through the one Fields reader and its
 * field-path errors, so every message is checked, and its problems named,
 * the same way.
 */
import { BadRequestError } from '../errors';
import type { PortMapping, Protocol } from '../model';
import * as ip from '../net/ip';
import { cidrKey, keyCidr } from '../store/keys';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  IpamData,
  JoinRequest,
  JoinResult,
  RequestAddressRequest,
  RequestPoolRequest,
  RequestPoolResult,
} from '../protocol/services';

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

/** What dockerd's `stringid.GenerateRandomID` makes: NetworkID and EndpointID. */
const DOCKER_ID = /^[0-9a-f]{64}$/;
/** Colon-hex, as libnetwork prints a net.HardwareAddr. */
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;
/** `/var/run/docker/netns/<12 hex>`, or the same under another exec root: no blanks, quotes or control characters. */
const SANDBOX_KEY = /^\/[\w./@:+=,-]*$/;

/** A bad value as shown in an error: JSON-quoted, so a newline shows as \n, and cut short. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const isIpv4Cidr = (text: string): boolean => ip.parseCidr(text)?.family === 4;
const isIpv6Cidr = (text: string): boolean => ip.parseCidr(text)?.family === 6;
const isCidr = (text: string): boolean => ip.parseCidr(text) !== undefined;
const isAddress = (text: string): boolean => ip.parseIp(text) !== undefined;

/** Sluice's PoolID is the network key: the subnet in canonical form with '/' as '-'. */
function isPoolId(text: string): boolean {
  const cidr = ip.parseCidr(keyCidr(text));
  return cidr !== undefined && cidrKey(ip.formatCidr(cidr)) === text;
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

  /** A required string of the given form, e.g. a Docker ID. */
  matching(key: string, valid: (text: string) => boolean, form: string): string {
    const value = this.id(key);
    if (!valid(value)) this.fail(key, `must be ${form}, got ${show(value)}`);
    return value;
  }

  /** An optional string of the given form; "" counts as absent. */
  optionalMatching(key: string, valid: (text: string) => boolean, form: string): string | undefined {
    const value = this.optionalString(key);
    if (value !== undefined && !valid(value)) this.fail(key, `must be ${form}, got ${show(value)}`);
    return value;
  }

  /** NetworkID, EndpointID: 64 lowercase hex digits, never a prefix. */
  dockerId(key: string): string {
    return this.matching(key, (text) => DOCKER_ID.test(text), 'a Docker ID (64 lowercase hex digits)');
  }

  poolId(key: string): string {
    return this.matching(key, isPoolId, 'a sluice PoolID such as "10.96.0.0-16" or "fd00:96::-64"');
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

  /** A required integer in `min`..65535 (Go uint16; 0 where Docker means "none"). */
  port(key: string, min: 0 | 1): number {
    const value = this.present(key);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 65535) {
      this.fail(key, `must be a port number (${min}-65535), got ${show(value)}`);
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

  /** A string-to-string map; absent or null reads as empty. Values may be checked for a form. */
  stringMap(key: string, valid?: (text: string) => boolean, form?: string): Record<string, string> {
    const nested = this.object(key);
    const out: Record<string, string> = {};
    for (const k of nested.keys()) out[k] = valid === undefined ? nested.string(k) : nested.matching(k, valid, form ?? 'valid');
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

function ipamData(isCidr: (text: string) => boolean, form: string): (f: Fields) => IpamData {
  return (f) => {
    const gateway = f.optionalMatching('Gateway', isCidr, form);
    return {
      addressSpace: f.string('AddressSpace'),
      pool: f.matching('Pool', isCidr, form),
      ...(gateway !== undefined && { gateway }),
      auxAddresses: f.stringMap('AuxAddresses', isCidr, form),
    };
  };
}

const IPV4_CIDR = 'an IPv4 CIDR such as "10.96.0.5/16"';
const IPV6_CIDR = 'an IPv6 CIDR such as "fd00:96::5/64"';
const ADDRESS = 'an IP address such as "10.96.0.5" or "fd00:96::5"';

export function decodeCreateNetwork(body: unknown): CreateNetworkRequest {
  const f = Fields.body('CreateNetwork', body);
  const options = f.object('Options');
  return {
    networkId: f.dockerId('NetworkID'),
    generic: options.stringMap(OPT.generic),
    internal: options.bool(OPT.internal),
    ipv6: options.bool(OPT.enableIpv6),
    ipv4Data: f.list('IPv4Data').map(ipamData(isIpv4Cidr, IPV4_CIDR)),
    ipv6Data: f.list('IPv6Data').map(ipamData(isIpv6Cidr, IPV6_CIDR)),
  };
}

export function decodeDeleteNetwork(body: unknown): { networkId: string } {
  return { networkId: Fields.body('DeleteNetwork', body).dockerId('NetworkID') };
}

/** DeleteEndpoint, EndpointOperInfo, Leave and RevokeExternalConnectivity carry only the two IDs. */
export function decodeEndpointRef(method: string, body: unknown): EndpointRef {
  const f = Fields.body(method, body);
  return { networkId: f.dockerId('NetworkID'), endpointId: f.dockerId('EndpointID') };
}

function portMapping(f: Fields): PortMapping {
  const protoNumber = f.raw('Proto');
  const proto = PROTOCOLS.get(protoNumber);
  if (proto === undefined) {
    if (protoNumber === undefined || protoNumber === null) f.fail('Proto', 'is missing');
    f.fail('Proto', `must be 6 (tcp), 17 (udp) or 132 (sctp), got ${JSON.stringify(protoNumber)}`);
  }
  const hostIp = f.optionalMatching('HostIP', isAddress, 'an IP address');
  // HostPort 0 is `-p 80` (no host port); HostPortEnd 0 means "just HostPort".
  const hostPort = f.port('HostPort', 0);
  const hostPortEnd = f.port('HostPortEnd', 0);
  if (hostPortEnd !== 0 && hostPortEnd < hostPort) f.fail('HostPortEnd', `must not be below HostPort ${hostPort}, got ${hostPortEnd}`);
  if (hostPort === 0 && hostPortEnd !== 0) f.fail('HostPortEnd', `must be 0 without a HostPort, got ${hostPortEnd}`);
  return {
    proto,
    containerPort: f.port('Port', 1),
    ...(hostIp !== undefined && { hostIp }),
    hostPort,
    hostPortEnd,
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
  const address = iface.optionalMatching('Address', isIpv4Cidr, IPV4_CIDR);
  const addressIPv6 = iface.optionalMatching('AddressIPv6', isIpv6Cidr, IPV6_CIDR);
  const macAddress = iface.optionalMatching('MacAddress', (text) => MAC.test(text), 'a MAC address such as "02:42:0a:60:00:05"');
  return {
    networkId: f.dockerId('NetworkID'),
    endpointId: f.dockerId('EndpointID'),
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
    networkId: f.dockerId('NetworkID'),
    endpointId: f.dockerId('EndpointID'),
    sandboxKey: f.matching('SandboxKey', (text) => SANDBOX_KEY.test(text), 'an absolute path such as "/var/run/docker/netns/1a2b3c4d5e6f"'),
    portMappings: portMappings(f.object('Options')),
  };
}

export function decodeProgramExternalConnectivity(body: unknown): EndpointRef & { portMappings: PortMapping[] } {
  const f = Fields.body('ProgramExternalConnectivity', body);
  return {
    networkId: f.dockerId('NetworkID'),
    endpointId: f.dockerId('EndpointID'),
    portMappings: portMappings(f.object('Options')),
  };
}

// ---- IPAM driver requests -------------------------------------------------

export function decodeRequestPool(body: unknown): RequestPoolRequest {
  const f = Fields.body('RequestPool', body);
  // AddressSpace is not decoded: Sluice serves its local and global spaces alike.
  const pool = f.optionalMatching('Pool', isCidr, 'a CIDR such as "10.96.0.0/16"');
  const subPool = f.optionalMatching('SubPool', isCidr, 'a CIDR such as "10.96.1.0/24"');
  return {
    ...(pool !== undefined && { pool }),
    ...(subPool !== undefined && { subPool }),
    options: f.stringMap('Options'),
    v6: f.bool('V6'),
  };
}

export function decodeReleasePool(body: unknown): { poolId: string } {
  return { poolId: Fields.body('ReleasePool', body).poolId('PoolID') };
}

export function decodeRequestAddress(body: unknown): RequestAddressRequest {
  const f = Fields.body('RequestAddress', body);
  const address = f.optionalMatching('Address', isAddress, ADDRESS);
  const requestType = f.object('Options').optionalString('RequestAddressType');
  return {
    poolId: f.poolId('PoolID'),
    ...(address !== undefined && { address }),
    ...(requestType !== undefined && { requestType }),
  };
}

export function decodeReleaseAddress(body: unknown): { poolId: string; address: string } {
  const f = Fields.body('ReleaseAddress', body);
  return { poolId: f.poolId('PoolID'), address: f.matching('Address', isAddress, ADDRESS) };
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
  /** Plain IP, not CIDR (libnetwork uses net.ParseIP); so is GatewayIPv6. */
  Gateway: string;
  GatewayIPv6?: string;
  StaticRoutes: { Destination: string; RouteType: 0 | 1; NextHop: string }[];
  DisableGatewayService: boolean;
}

export function encodeJoin(result: JoinResult): JoinReply {
  return {
    InterfaceName: { SrcName: result.srcName, DstPrefix: result.dstPrefix },
    Gateway: result.gateway,
    ...(result.gatewayIPv6 !== undefined && { GatewayIPv6: result.gatewayIPv6 }),
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
