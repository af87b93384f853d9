/**
 * The store is untrusted input: a bug, a hand-edited key or a half-written
 * value can put anything under /sluice/v1/. Every record read from it goes
 * through one of these readers, which check the value's shape, its addresses
 * and names, and that it agrees with its key (keys.ts), and throw
 * InvalidRecordError naming the key otherwise. The agent's view and the typed
 * Registry both read through here, so they agree on what is valid.
 *
 * Cheap on purpose: a JSON.parse and a few comparisons (policies excepted, which
 * go through the policy parser), since the plugin reads records on every request.
 * Unknown fields are allowed, so a newer agent may add some.
 *
 * One file: a reader per record kind side by side, sharing the key checks
 * (segments, the claim keys), so every kind is checked the same way.
 */
import { InvalidRecordError, PolicyError } from '../errors';
import {
  DOCKER_NETWORK_NAME,
  type AddressRecord,
  type BlockRecord,
  type EndpointRecord,
  type NetworkRecord,
  type NetworkSettings,
  MAX_MTU,
  MIN_MTU,
  type NodeRecord,
} from '../model';
import * as ip from '../net/ip';
import { isSluiceHostIfname } from '../firewall/names';
import { WIREGUARD_KEY } from '../encryption/keys';
import { type Policy, parsePolicies } from '../policy-document/policy';
import { keyCidr, keySegments, keyShape, splitKey } from './keys';
import type { KeyValue } from './store';
import {
  Problem,
  address,
  boolean,
  cidrIn,
  cidrOf,
  guard,
  integer,
  json,
  labels,
  list,
  networkKey,
  nodeName,
  object,
  oneOf,
  portMapping,
  same,
  string,
  text,
} from './value-checks';

/** What a key under /sluice/v1/ holds, once read and checked. */
export type StoreRecord =
  | { kind: 'network'; record: NetworkRecord }
  | { kind: 'node'; record: NodeRecord }
  | { kind: 'alive'; node: string }
  | { kind: 'block'; record: BlockRecord }
  | { kind: 'address'; record: AddressRecord }
  | { kind: 'endpoint'; record: EndpointRecord }
  | { kind: 'dockernet'; record: DockerNetRecord }
  | { kind: 'policy'; record: Policy }
  /** A kind this version does not know (a newer agent's): not an error. */
  | { kind: 'unknown' };

/** One node's Docker network ID → the sluice network key (Docker's IDs differ per host). */
export interface DockerNetRecord {
  node: string;
  dockerNetworkId: string;
  network: string;
}

/** Holder of a block or address claim whose record is unreadable: the claim still stands, so nobody takes it. */
export const UNKNOWN_HOLDER = '(invalid record)';

/** Reads any key under ROOT; throws InvalidRecordError if the key or its value is not valid. */
export function readRecord(kv: KeyValue): StoreRecord {
  const [kind] = splitKey(kv.key);
  switch (kind) {
    case 'networks':
      return { kind: 'network', record: readNetwork(kv) };
    case 'nodes':
      return { kind: 'node', record: readNode(kv) };
    case 'alive':
      return { kind: 'alive', node: readAlive(kv) };
    case 'blocks':
      return { kind: 'block', record: readBlock(kv) };
    case 'addresses':
      return { kind: 'address', record: readAddress(kv) };
    case 'endpoints':
      return { kind: 'endpoint', record: readEndpoint(kv) };
    case 'dockernets':
      return { kind: 'dockernet', record: readDockerNet(kv) };
    case 'policies':
      return { kind: 'policy', record: readPolicy(kv) };
    default:
      return { kind: 'unknown' };
  }
}

/**
 * `read(kv)`, or the InvalidRecordError it threw: for callers that go on
 * past a bad record instead of failing.
 */
export function tryRead<T>(kv: KeyValue, read: (kv: KeyValue) => T): T | InvalidRecordError {
  try {
    return read(kv);
  } catch (err) {
    if (err instanceof InvalidRecordError) return err;
    throw err;
  }
}

export function readNetwork(kv: KeyValue): NetworkRecord {
  return guard(kv, () => {
    const [net] = segments(kv.key, 'networks', 1);
    const subnet = networkKey(net, 'key');
    const o = json(kv.value);
    const record: NetworkRecord = {
      key: same(o.key, net, 'key'),
      subnet: same(o.subnet, ip.formatCidr(subnet), 'subnet'),
      blockSize: integer(o.blockSize, subnet.prefix, ip.bits(subnet.family), 'blockSize'),
      gateway: address(o.gateway, subnet, 'gateway'),
    };
    if (o.name !== undefined) record.name = text(o.name, DOCKER_NETWORK_NAME, 'a Docker network name', 'name');
    if (o.managed !== undefined) record.managed = boolean(o.managed, 'managed');
    if (o.ipRange !== undefined) record.ipRange = ip.formatCidr(cidrIn(string(o.ipRange, 'ipRange'), subnet, 'ipRange'));
    if (o.settings !== undefined) record.settings = networkSettings(o.settings, subnet);
    return record;
  });
}

const ISO_TIME = { test: (s: string) => !Number.isNaN(Date.parse(s)) };
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function networkSettings(value: unknown, subnet: ip.Cidr): NetworkSettings {
  const o = object(value, 'settings');
  const aux = object(o.auxAddresses, 'settings.auxAddresses');
  const settings: NetworkSettings = {
    internal: boolean(o.internal, 'settings.internal'),
    auxAddresses: Object.fromEntries(Object.entries(aux).map(([name, ip]) => [name, address(ip, subnet, `settings.auxAddresses.${name}`)])),
  };
  if (o.mtu !== undefined) settings.mtu = integer(o.mtu, MIN_MTU, MAX_MTU, 'settings.mtu');
  if (o.ipv6Subnet !== undefined) settings.ipv6Subnet = cidrOf(o.ipv6Subnet, 6, 'settings.ipv6Subnet');
  return settings;
}

export function readNode(kv: KeyValue): NodeRecord {
  return guard(kv, () => {
    const [name] = segments(kv.key, 'nodes', 1);
    nodeName(name, 'key');
    const o = json(kv.value);
    const record: NodeRecord = {
      name: same(o.name, name, 'name'),
      ip: address(o.ip, 4, 'ip'),
      backend: oneOf(o.backend, ['host-gw', 'vxlan', 'auto'] as const, 'backend'),
      version: string(o.version, 'version'),
      lastSeen: text(o.lastSeen, ISO_TIME, 'an ISO time', 'lastSeen'),
    };
    if (o.ip6 !== undefined) record.ip6 = address(o.ip6, 6, 'ip6');
    if (o.vtepMac !== undefined) record.vtepMac = text(o.vtepMac, MAC, 'a MAC address', 'vtepMac');
    if (o.wireguard !== undefined) {
      const wireguard = object(o.wireguard, 'wireguard');
      record.wireguard = {
        publicKey: text(wireguard.publicKey, WIREGUARD_KEY, 'a WireGuard public key', 'wireguard.publicKey'),
        port: integer(wireguard.port, 1, 65535, 'wireguard.port'),
        implementation: oneOf(wireguard.implementation, ['kernel', 'wireguard-go'] as const, 'wireguard.implementation'),
      };
    }
    if (o.lastApply !== undefined) record.lastApply = text(o.lastApply, ISO_TIME, 'an ISO time', 'lastApply');
    if (o.lastError !== undefined) {
      const lastError = object(o.lastError, 'lastError');
      record.lastError = { at: text(lastError.at, ISO_TIME, 'an ISO time', 'lastError.at'), message: string(lastError.message, 'lastError.message') };
    }
    if (o.reclaimed !== undefined) {
      const reclaimed = object(o.reclaimed, 'reclaimed');
      record.reclaimed = {
        at: text(reclaimed.at, ISO_TIME, 'an ISO time', 'reclaimed.at'),
        by: nodeName(reclaimed.by, 'reclaimed.by'),
      };
      if (reclaimed.fencedAt !== undefined) record.reclaimed.fencedAt = text(reclaimed.fencedAt, ISO_TIME, 'an ISO time', 'reclaimed.fencedAt');
    }
    return record;
  });
}

/** A live node's name; the value (when it said so) does not matter. */
export function readAlive(kv: KeyValue): string {
  return guard(kv, () => nodeName(segments(kv.key, 'alive', 1)[0], 'key'));
}

export function readBlock(kv: KeyValue): BlockRecord {
  return guard(kv, () => {
    const claim = blockClaim(kv.key);
    const o = json(kv.value);
    return {
      network: same(o.network, claim.network, 'network'),
      block: same(o.block, claim.block, 'block'),
      node: nodeName(o.node, 'node'),
    };
  });
}

export function readAddress(kv: KeyValue): AddressRecord {
  return guard(kv, () => {
    const claim = addressClaim(kv.key);
    const o = json(kv.value);
    const record: AddressRecord = {
      network: same(o.network, claim.network, 'network'),
      address: same(o.address, claim.address, 'address'),
      // The gateway is claimed by every node at once.
      node: o.node === '*' ? '*' : nodeName(o.node, 'node'),
      kind: oneOf(o.kind, ['endpoint', 'gateway', 'aux'] as const, 'kind'),
    };
    if (o.endpointId !== undefined) record.endpointId = string(o.endpointId, 'endpointId');
    if (o.containerId !== undefined) record.containerId = string(o.containerId, 'containerId');
    return record;
  });
}

/**
 * Claims as IPAM must see them: the record, or, if only the value is bad, the
 * block or address held by UNKNOWN_HOLDER, so it is never handed out twice.
 * Throw only if the key itself is not a claim's.
 */
export function readBlockClaim(kv: KeyValue): BlockRecord {
  try {
    return readBlock(kv);
  } catch {
    // Invalid: held by nobody known (above).
    return { ...guard(kv, () => blockClaim(kv.key)), node: UNKNOWN_HOLDER };
  }
}

export function readAddressClaim(kv: KeyValue): AddressRecord {
  try {
    return readAddress(kv);
  } catch {
    // Invalid: held by nobody known (above).
    return { ...guard(kv, () => addressClaim(kv.key)), node: UNKNOWN_HOLDER, kind: 'endpoint' };
  }
}

export function readEndpoint(kv: KeyValue): EndpointRecord {
  return guard(kv, () => {
    const [node, id] = segments(kv.key, 'endpoints', 2);
    nodeName(node, 'key');
    const o = json(kv.value);
    const subnet = networkKey(o.network, 'network');
    const record: EndpointRecord = {
      id: same(o.id, id, 'id'),
      network: o.network as string,
      node: same(o.node, node, 'node'),
      address: address(o.address, subnet, 'address'),
      ...(o.addressV6 !== undefined && { addressV6: address(o.addressV6, 6, 'addressV6') }),
      hostIfname: text(o.hostIfname, { test: isSluiceHostIfname }, 'a sluice veth name (slv + 11 hex digits)', 'hostIfname'),
      labels: o.labels === null ? null : labels(o.labels),
      ports: list(o.ports, 'ports').map((p, i) => portMapping(p, `ports[${i}]`)),
    };
    if (o.containerId !== undefined) record.containerId = string(o.containerId, 'containerId');
    if (o.containerName !== undefined) record.containerName = string(o.containerName, 'containerName');
    if (o.aliases !== undefined) record.aliases = list(o.aliases, 'aliases').map((a, i) => string(a, `aliases[${i}]`));
    return record;
  });
}

/** Not JSON: the value is the network key itself. */
export function readDockerNet(kv: KeyValue): DockerNetRecord {
  return guard(kv, () => {
    const [node, dockerNetworkId] = segments(kv.key, 'dockernets', 2);
    nodeName(node, 'key');
    networkKey(kv.value, 'value');
    return { node, dockerNetworkId, network: kv.value };
  });
}

/** Policies are kept as their YAML document, read back through the policy parser with its limits. */
export function readPolicy(kv: KeyValue): Policy {
  return guard(kv, () => {
    const [name] = segments(kv.key, 'policies', 1);
    let policies: Policy[];
    try {
      policies = parsePolicies(kv.value);
    } catch (err) {
      if (err instanceof PolicyError) throw new Problem(err.message);
      throw err;
    }
    const [policy, ...more] = policies;
    if (policy === undefined || more.length > 0) throw new Problem(`holds ${policies.length} policies, expected one`);
    same(policy.name, name, 'name');
    return policy;
  });
}

// ---- keys ----

/** The `count` segments after ROOT/<kind>/, each non-empty. */
function segments(key: string, kind: string, count: 1): [string];
function segments(key: string, kind: string, count: 2): [string, string];
function segments(key: string, kind: string, count: 3): [string, string, string];
function segments(key: string, kind: string, count: number): string[] {
  const parts = keySegments(key, kind, count);
  if (parts === undefined) throw new Problem(`key is not ${keyShape(kind, count)}`);
  return parts;
}

function blockClaim(key: string): { network: string; block: string } {
  const [network, blockPart] = segments(key, 'blocks', 2);
  const subnet = networkKey(network, 'key');
  const block = cidrIn(keyCidr(blockPart), subnet, 'key');
  return { network, block: ip.formatCidr(block) };
}

function addressClaim(key: string): { network: string; address: string } {
  const [network, blockPart, ip] = segments(key, 'addresses', 3);
  const block = cidrIn(keyCidr(blockPart), networkKey(network, 'key'), 'key');
  return { network, address: address(ip, block, 'key') };
}
