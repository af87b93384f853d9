/**
 * Address arithmetic for both families, on bigint: for IPAM and the store's
 * checks, where a pool may be IPv4 or IPv6. The firewall's and the view's hot
 * paths (ipset members, sorting thousands of addresses) stay on ipv4.ts's
 * 32-bit numbers, which cost a fraction of a bigint.
 *
 * Import it as a namespace (`import * as ip from '../net/ip'`): the names
 * mirror ipv4.ts.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Address {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  /** Network address (host bits zero). */
  base: bigint;
  prefix: number;
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Dotted IPv4 or RFC 4291 IPv6 text; no zone (`%eth0`), no CIDR. */
export function parseIp(text: string): Address | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return { family: 4, value: fromBytes(ipaddr.IPv4.parse(text).toByteArray()) };
  if (!text.includes('%') && ipaddr.IPv6.isValid(text)) return { family: 6, value: fromBytes(ipaddr.IPv6.parse(text).toByteArray()) };
  return undefined;
}

/** The canonical text: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(address: Address): string {
  const bytes: number[] = [];
  for (let shift = BigInt(bits(address.family) - 8); shift >= 0n; shift -= 8n) bytes.push(Number((address.value >> shift) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

function fromBytes(bytes: number[]): bigint {
  return bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

export function mask(family: Family, prefix: number): bigint {
  const width = BigInt(bits(family));
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
}

/** "ADDRESS/N" of either family; host bits are cleared, as Docker does for `--subnet`. */
export function parseCidr(text: string): Cidr | undefined {
  const [address, len, extra] = text.split('/');
  if (address === undefined || len === undefined || extra !== undefined || !/^\d{1,3}$/.test(len)) return undefined;
  const parsed = parseIp(address);
  const prefix = Number(len);
  if (parsed === undefined || prefix > bits(parsed.family)) return undefined;
  return blockOf(parsed, prefix);
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.base })}/${cidr.prefix}`;
}

export function size(cidr: Cidr): bigint {
  return 1n << BigInt(bits(cidr.family) - cidr.prefix);
}

export function lastAddress(cidr: Cidr): bigint {
  return cidr.base + size(cidr) - 1n;
}

export function contains(cidr: Cidr, address: Address): boolean {
  return address.family === cidr.family && (address.value & mask(cidr.family, cidr.prefix)) === cidr.base;
}

/** Never across families: an IPv4 and an IPv6 pool do not overlap. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const m = mask(a.family, Math.min(a.prefix, b.prefix));
  return (a.base & m) === (b.base & m);
}

/** The `prefix`-sized block that holds `address`. */
export function blockOf(address: Address, prefix: number): Cidr {
  return { family: address.family, base: address.value & mask(address.family, prefix), prefix };
}

export function at(cidr: Cidr, value: bigint): Address {
  return { family: cidr.family, value };
}
