/**
 * What the resolver answers, as pure functions: an index of names built from
 * the cluster's endpoints, and a decision per query (a reply, or "forward
 * upstream"). No sockets here; server.ts does the I/O.
 *
 * Scoping: the asker is the endpoint whose address sent the query; it sees
 * the names of every network its container is on, and nothing else.
 */
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import type { EndpointRecord, NetworkRecord } from '../model';
import * as ip from '../net/ip';

/** Seconds: short, so a container that moves or goes is forgotten quickly. */
export const NAME_TTL = 5;
/** Largest UDP reply without EDNS (RFC 1035 §4.2.1); more is sent truncated, for a retry over TCP. */
export const UDP_REPLY_LIMIT = 512;

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** The header bits a reply keeps from its query: RD (recursion desired) and CD (checking disabled). */
const ECHOED_FLAGS = dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED;
const OPCODE_QUERY = 0;

export interface NameIndex {
  /**
   * Network key → lowercased name (container name, alias, NAME.NETWORK) → addresses, both
   * families in one list (an IPv6 one has a ':'): a name exists if it has either.
   */
  readonly names: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
  /** Endpoint address (either family) → the network keys its container is on: what that asker may see. */
  readonly askers: ReadonlyMap<string, readonly string[]>;
  /** Endpoint address (either family, canonical) → endpoint, for PTR. */
  readonly endpoints: ReadonlyMap<string, EndpointRecord>;
  /** Network key → lowercased Docker network name, when known. */
  readonly networkNames: ReadonlyMap<string, string>;
  /** Sluice subnets, IPv4 and IPv6: reverse lookups inside them are answered here, never forwarded. */
  readonly subnets: readonly ip.Cidr[];
  /** The `--internal` networks' keys: an asker on nothing else gets no answer from outside the cluster. */
  readonly internal: ReadonlySet<string>;
}

export type Decision = { kind: 'reply'; packet: Packet } | { kind: 'forward' };

/** Builds the index in one pass; cheap enough (linear) to rebuild after every change of the view. */
export function buildNameIndex(networks: Iterable<NetworkRecord>, endpoints: Iterable<EndpointRecord>): NameIndex {
  const networkNames = new Map<string, string>();
  const subnets: ip.Cidr[] = [];
  const internal = new Set<string>();
  for (const network of networks) {
    if (network.name) networkNames.set(network.key, network.name.toLowerCase());
    if (network.settings?.internal === true) internal.add(network.key);
    const subnet = ip.parseCidr(network.subnet);
    if (subnet) subnets.push(subnet);
  }
  const names = new Map<string, Map<string, string[]>>();
  const containerNetworks = new Map<string, string[]>();
  const byAddress = new Map<string, EndpointRecord>();
  for (const endpoint of endpoints) {
    const addresses = endpoint.addressV6 ? [endpoint.address, endpoint.addressV6] : [endpoint.address];
    for (const address of addresses) byAddress.set(address, endpoint);
    if (endpoint.containerId) push(containerNetworks, endpoint.containerId, endpoint.network);
    let byName = names.get(endpoint.network);
    if (!byName) names.set(endpoint.network, (byName = new Map<string, string[]>()));
    const networkName = networkNames.get(endpoint.network);
    const own = new Set([endpoint.containerName, ...(endpoint.aliases ?? [])].filter((n): n is string => !!n).map((n) => n.toLowerCase()));
    for (const name of own) {
      for (const address of addresses) {
        push(byName, name, address);
        if (networkName) push(byName, `${name}.${networkName}`, address);
      }
    }
  }
  const askers = new Map<string, string[]>();
  for (const [address, endpoint] of byAddress) {
    const networks = endpoint.containerId ? containerNetworks.get(endpoint.containerId) : undefined;
    askers.set(address, [...new Set(networks ?? [endpoint.network])]);
  }
  return { names, askers, endpoints: byAddress, networkNames, subnets, internal };
}

/** Appends without a duplicate check: callers pass each value once, and a check would make big services quadratic. */
function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Decides a decoded query from `asker` (its source address). `random` picks
 * the order of replicas' addresses, so clients spread over them.
 */
export function decide(index: NameIndex, asker: string, query: DecodedPacket, random: () => number = Math.random): Decision {
  const visible = index.askers.get(asker);
  const question = query.questions?.[0];
  // Not a sluice endpoint, or not a plain one-question query: upstream's business.
  if (!visible || !question || query.questions!.length !== 1 || opcode(query) !== OPCODE_QUERY) return { kind: 'forward' };
  // An --internal network has no way out, names included (Docker's embedded DNS does the same since 26.1).
  const outside: Decision = visible.every((network) => index.internal.has(network)) ? reply(query, RCODE.REFUSED, []) : { kind: 'forward' };
  if (question.class !== undefined && question.class !== 'IN') return outside;
  const name = question.name.toLowerCase();

  if (question.type === 'PTR') {
    const address = reverseAddress(name);
    if (address !== undefined) {
      const endpoint = index.endpoints.get(address);
      if (endpoint?.containerName && visible.includes(endpoint.network)) {
        return reply(query, RCODE.NOERROR, [{ type: 'PTR', name: question.name, ttl: NAME_TTL, data: endpoint.containerName }]);
      }
      const parsed = ip.parseIp(address)!;
      // Ours, but not known or not visible to this asker: the same answer, so nothing leaks.
      if (index.subnets.some((subnet) => ip.contains(subnet, parsed))) return reply(query, RCODE.NXDOMAIN, []);
      return outside;
    }
  }

  const addresses = lookup(index, visible, name);
  if (addresses.length > 0) {
    // Other types of a known name (MX, …, or AAAA of an IPv4-only one): the name exists, with no such data.
    // dns-packet decodes type 255 as 'ANY', which its typings leave out.
    const wanted = ADDRESS_TYPES[question.type as string] ?? [];
    const answers: Answer[] = shuffled(addresses.filter((data) => wanted.includes(addressType(data))), random)
      .map((data) => ({ type: addressType(data), name: question.name, ttl: NAME_TTL, data }));
    return reply(query, RCODE.NOERROR, answers);
  }
  // NAME.NETWORK on a network the asker is on: that zone is ours, and NAME is not in it.
  for (const network of visible) {
    const networkName = index.networkNames.get(network);
    if (networkName && name.endsWith(`.${networkName}`)) return reply(query, RCODE.NXDOMAIN, []);
  }
  return outside;
}

/** The address records each query type gets. */
const ADDRESS_TYPES: Readonly<Record<string, readonly AddressType[]>> = { A: ['A'], AAAA: ['AAAA'], ANY: ['A', 'AAAA'] };

type AddressType = 'A' | 'AAAA';

function addressType(address: string): AddressType {
  return address.includes(':') ? 'AAAA' : 'A';
}

function lookup(index: NameIndex, visible: readonly string[], name: string): readonly string[] {
  let found: readonly string[] = [];
  for (const network of visible) {
    const addresses = index.names.get(network)?.get(name);
    if (!addresses) continue;
    found = found.length === 0 ? addresses : [...new Set([...found, ...addresses])];
  }
  return found;
}

/** Fisher–Yates on a copy: the index's lists stay as they are. */
function shuffled(list: readonly string[], random: () => number): string[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * "4.3.2.1.in-addr.arpa" → "1.2.3.4", and the 32 reversed nibbles of an IPv6
 * address + ".ip6.arpa" → that address in canonical text (RFC 3596 §2.5), as
 * the store keeps it; undefined for anything else.
 */
export function reverseAddress(name: string): string | undefined {
  const lower = name.toLowerCase();
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(lower);
  if (v4) {
    const address = ip.parseIp([v4[4], v4[3], v4[2], v4[1]].join('.'));
    return address && ip.formatIp(address);
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(lower);
  if (v6) return ip.formatIp({ family: 6, value: BigInt(`0x${v6[1]!.split('.').reverse().join('')}`) });
  return undefined;
}

function opcode(packet: DecodedPacket): number {
  return ((packet.flags ?? 0) >> 11) & 0xf;
}

function reply(query: DecodedPacket, rcode: number, answers: Answer[]): Decision {
  const flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | ((query.flags ?? 0) & ECHOED_FLAGS) | rcode;
  return { kind: 'reply', packet: { type: 'response', id: query.id, flags, questions: query.questions, answers } };
}

/** What the asker gets when no upstream answered in time. */
export function serverFailure(query: DecodedPacket): Packet {
  const flags = dnsPacket.RECURSION_AVAILABLE | ((query.flags ?? 0) & ECHOED_FLAGS) | RCODE.SERVFAIL;
  return { type: 'response', id: query.id, flags, questions: query.questions, answers: [] };
}

/**
 * Decodes a query; undefined for anything that is not one (garbage, a
 * response, trailing junk), which the server drops without a word.
 */
export function decodeQuery(bytes: Buffer): DecodedPacket | undefined {
  try {
    const packet = dnsPacket.decode(bytes);
    if (packet.type !== 'query' || dnsPacket.decode.bytes !== bytes.length) return undefined;
    return packet;
  } catch {
    // Not a DNS query (garbage on port 53): no answer, as from any resolver.
    return undefined;
  }
}

/** Encodes a reply for UDP: one that does not fit is sent empty with TC set, so the client asks over TCP. */
export function encodeForUdp(packet: Packet): Buffer {
  const bytes = dnsPacket.encode(packet);
  if (bytes.length <= UDP_REPLY_LIMIT) return bytes;
  return dnsPacket.encode({ ...packet, flags: (packet.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, answers: [] });
}
