/**
 * Checks of the values in a record read from the store, each naming the
 * field (`path`) it looked at. A failed check throws Problem; guard() turns
 * it into the InvalidRecordError of the record's key.
 */
import { InvalidRecordError } from '../errors';
import { NODE_NAME, type Labels, type PortMapping } from '../model';
import * as ip from '../net/ip';
import { cidrKey, keyCidr } from './keys';
import type { KeyValue } from './store';

/** A check failed; guard() turns it into an InvalidRecordError naming the key. */
export class Problem extends Error {}

export function guard<T>(kv: KeyValue, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof Problem) throw new InvalidRecordError(kv.key, err.message);
    throw err;
  }
}

const PREVIEW = 40;

/** The value in a message, cut short: a record may hold a megabyte of garbage. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'an object';
  const json = JSON.stringify(value);
  return json.length > PREVIEW ? `${json.slice(0, PREVIEW)}…` : json;
}

export function expected(what: string, value: unknown, path: string): Problem {
  return new Problem(`${path}: expected ${what}, found ${describe(value)}`);
}

/** A record's value: a JSON object. */
export function json(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new Problem(`value is not JSON: ${describe(value)}`);
  }
  return object(parsed, 'value');
}

export function object(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw expected('an object', value, path);
  return value as Record<string, unknown>;
}

export function string(value: unknown, path: string): string {
  if (typeof value !== 'string') throw expected('a string', value, path);
  return value;
}

export function text(value: unknown, pattern: { test(s: string): boolean }, what: string, path: string): string {
  const s = string(value, path);
  if (!pattern.test(s)) throw expected(what, s, path);
  return s;
}

/** A value that must equal what the key (or another field) already says. */
export function same(value: unknown, wanted: string, path: string): string {
  if (value !== wanted) throw expected(`${JSON.stringify(wanted)} (as the key says)`, value, path);
  return wanted;
}

export function integer(value: unknown, min: number, max: number, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw expected(`an integer from ${min} to ${max}`, value, path);
  }
  return value;
}

export function boolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw expected('true or false', value, path);
  return value;
}

export function oneOf<T extends string>(value: unknown, options: readonly T[], path: string): T {
  const found = options.find((o) => o === value);
  if (found === undefined) throw expected(`one of ${options.join(', ')}`, value, path);
  return found;
}

export function list(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw expected('a list', value, path);
  return value;
}

// Sluice's values

export function nodeName(value: unknown, path: string): string {
  return text(value, NODE_NAME, 'a node name', path);
}

/** A network key ("10.96.0.0-16", "fd00:96::-64"), canonical; returns its subnet. */
export function networkKey(value: unknown, path: string): ip.Cidr {
  const key = string(value, path);
  const subnet = ip.parseCidr(keyCidr(key));
  if (subnet === undefined || cidrKey(ip.formatCidr(subnet)) !== key) throw expected('a network key such as "10.96.0.0-16"', key, path);
  return subnet;
}

/** A canonical CIDR of `family` (IPv6 as RFC 5952). */
export function cidrOf(value: unknown, family: ip.Family, path: string): string {
  const s = string(value, path);
  const cidr = ip.parseCidr(s);
  if (cidr?.family !== family || ip.formatCidr(cidr) !== s) throw expected(family === 4 ? 'an IPv4 CIDR' : 'an IPv6 CIDR', s, path);
  return s;
}

/** A canonical CIDR within `outer`. */
export function cidrIn(value: string, outer: ip.Cidr, path: string): ip.Cidr {
  const cidr = ip.parseCidr(value);
  if (cidr === undefined || ip.formatCidr(cidr) !== value || cidr.prefix < outer.prefix || !ip.contains(outer, ip.at(cidr, cidr.base))) {
    throw expected(`a block of ${ip.formatCidr(outer)}`, value, path);
  }
  return cidr;
}

/** An address in its canonical text (IPv6 as RFC 5952): within a CIDR, or any of a family. */
export function address(value: unknown, within: ip.Cidr | ip.Family, path: string): string {
  const s = string(value, path);
  const parsed = ip.parseIp(s);
  const family = typeof within === 'number' ? within : within.family;
  const inside = (a: ip.Address): boolean => (typeof within === 'number' ? a.family === within : ip.contains(within, a));
  if (parsed === undefined || ip.formatIp(parsed) !== s || !inside(parsed)) {
    const name = family === 4 ? 'an IPv4 address' : 'an IPv6 address';
    throw expected(typeof within === 'number' ? name : `${name} in ${ip.formatCidr(within)}`, s, path);
  }
  return s;
}

export function labels(value: unknown): Labels {
  const o = object(value, 'labels');
  for (const [k, v] of Object.entries(o)) string(v, `labels.${k}`);
  return o as Labels;
}

export function portMapping(value: unknown, path: string): PortMapping {
  const o = object(value, path);
  const mapping: PortMapping = {
    proto: oneOf(o.proto, ['tcp', 'udp', 'sctp'] as const, `${path}.proto`),
    containerPort: integer(o.containerPort, 0, 65535, `${path}.containerPort`),
    hostPort: integer(o.hostPort, 0, 65535, `${path}.hostPort`),
    hostPortEnd: integer(o.hostPortEnd, 0, 65535, `${path}.hostPortEnd`),
  };
  if (o.hostIp !== undefined) {
    mapping.hostIp = text(o.hostIp, { test: (s) => ip.parseIp(s) !== undefined }, 'an IP address', `${path}.hostIp`);
  }
  return mapping;
}
