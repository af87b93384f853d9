/**
 * Where the resolver forwards what is not a sluice name: `--dns-upstream
 * IP[:PORT][,…]`, or else the nameservers of the host's /etc/resolv.conf.
 * Never the resolver's own address (a query would loop until it times out).
 */
import ipaddr from 'ipaddr.js';
import { BadRequestError } from '../errors';
import { parseIp } from '../net/ipv4';

export const DNS_PORT = 53;

export interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

export function formatUpstream(upstream: Upstream): string {
  return upstream.family === 6 ? `[${upstream.host}]:${upstream.port}` : `${upstream.host}:${upstream.port}`;
}

/** Parses the flag's value: "IP[:PORT]" entries, IPv6 as "[IP]:PORT" or bare, separated by commas. */
export function parseUpstreams(text: string, dnsAddress: string): Upstream[] {
  const upstreams = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '').map((entry) => {
    const upstream = parseEntry(entry);
    if (!upstream) throw new BadRequestError(`--dns-upstream ${entry}: expected IP or IP:PORT (IPv6 as [IP]:PORT)`);
    if (upstream.host === dnsAddress) throw new BadRequestError(`--dns-upstream ${entry} is the resolver's own address (--dns-address)`);
    return upstream;
  });
  if (upstreams.length === 0) throw new BadRequestError(`--dns-upstream ${text}: no server given`);
  return upstreams;
}

function parseEntry(entry: string): Upstream | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return ipv6(bracketed[1]!, bracketed[2]);
  if (ipaddr.IPv6.isValid(entry)) return ipv6(entry, undefined);
  const [host, port, extra] = entry.split(':');
  if (host === undefined || extra !== undefined || parseIp(host) === undefined) return undefined;
  const number = portNumber(port);
  return number === undefined ? undefined : { host, port: number, family: 4 };
}

function ipv6(host: string, port: string | undefined): Upstream | undefined {
  const number = portNumber(port);
  return ipaddr.IPv6.isValid(host) && number !== undefined ? { host, port: number, family: 6 } : undefined;
}

function portNumber(text: string | undefined): number | undefined {
  if (text === undefined) return DNS_PORT;
  const port = Number(text);
  return /^\d{1,5}$/.test(text) && port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * The `nameserver` lines of a resolv.conf text, minus the resolver itself.
 * Lines that are not addresses are skipped, as the C library does.
 */
export function resolvConfUpstreams(text: string, dnsAddress: string): Upstream[] {
  const upstreams: Upstream[] = [];
  for (const line of text.split('\n')) {
    const [keyword, address] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined || address === dnsAddress) continue;
    if (parseIp(address) !== undefined) upstreams.push({ host: address, port: DNS_PORT, family: 4 });
    else if (ipaddr.IPv6.isValid(address)) upstreams.push({ host: address, port: DNS_PORT, family: 6 });
  }
  return upstreams;
}
