/**
 * Pure IPv4 arithmetic on unsigned 32-bit numbers, for the hot paths (ipset
 * members, sorting and matching thousands of addresses). Addresses and CIDRs
 * are parsed once at the edges; everything inside works on numbers. IPAM and
 * the store's checks, which see both families, use ip.ts.
 */
import ipaddr from 'ipaddr.js';

export interface Cidr {
  /** Network address (host bits zero). */
  base: number;
  prefix: number;
}

export function parseIp(text: string): number | undefined {
  if (!ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  const bytes = ipaddr.IPv4.parse(text).octets;
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

export function formatIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n"; host bits are cleared (Docker accepts "10.96.0.1/16" as 10.96.0.0/16). */
export function parseCidr(text: string): Cidr | undefined {
  const [ip, len, extra] = text.split('/');
  if (ip === undefined || len === undefined || extra !== undefined || !/^\d{1,2}$/.test(len)) return undefined;
  const prefix = Number(len);
  const address = parseIp(ip);
  if (address === undefined || prefix > 32) return undefined;
  return { base: (address & mask(prefix)) >>> 0, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.base)}/${cidr.prefix}`;
}

export function contains(cidr: Cidr, address: number): boolean {
  return ((address & mask(cidr.prefix)) >>> 0) === cidr.base;
}

/** The `prefix`-sized block of `cidr`'s space that holds `address`. */
export function blockOf(address: number, prefix: number): Cidr {
  return { base: (address & mask(prefix)) >>> 0, prefix };
}
