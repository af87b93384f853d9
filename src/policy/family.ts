/**
 * The cluster as one address family's firewall sees it. IPv4's is the
 * records as they are; IPv6's has each dual-stack endpoint at its IPv6
 * address and each dual-stack network at its IPv6 pool, so the one compiler
 * (and its incremental twin) builds both firewalls. Projections are
 * memoized per record: the same record gives the same object, and identity
 * is how the incremental firewall tells what changed.
 */
import type { EndpointRecord, NetworkRecord, PortMapping } from '../model';
import * as ip from '../net/ip';
import type { Protection } from './protect';

const endpoints = new WeakMap<EndpointRecord, EndpointRecord | null>();
const networks = new WeakMap<NetworkRecord, NetworkRecord | null>();
const protections = { 4: new WeakMap<Protection, Protection>(), 6: new WeakMap<Protection, Protection>() };

/** The endpoint at its address of `family`; undefined if it has none. */
export function endpointIn(endpoint: EndpointRecord, family: ip.Family): EndpointRecord | undefined {
  if (family === 4) return endpoint;
  let projected = endpoints.get(endpoint);
  if (projected === undefined) {
    const { addressV6 } = endpoint;
    projected = addressV6 === undefined ? null : { ...endpoint, address: addressV6 };
    endpoints.set(endpoint, projected);
  }
  return projected ?? undefined;
}

/** The network at its pool of `family` (its `--internal` and other settings kept); undefined if it has none. */
export function networkIn(network: NetworkRecord, family: ip.Family): NetworkRecord | undefined {
  if (family === 4) return network;
  let projected = networks.get(network);
  if (projected === undefined) {
    const ipv6Subnet = network.settings?.ipv6Subnet;
    projected = ipv6Subnet === undefined ? null : { ...network, subnet: ipv6Subnet };
    networks.set(network, projected);
  }
  return projected ?? undefined;
}

/** The protected destinations of `family`; the host ports are closed on every address of both. */
export function protectionIn(protection: Protection, family: ip.Family): Protection {
  let projected = protections[family].get(protection);
  if (projected === undefined) {
    const destinations = protection.destinations.filter((d) => ip.parseIp(d.address)?.family === family);
    projected = destinations.length === protection.destinations.length ? protection : { ...protection, destinations };
    protections[family].set(protection, projected);
  }
  return projected;
}

/** `-p` with no host address, 0.0.0.0 or ::: published on every address of the host, of both families. */
export function boundToEvery(mapping: PortMapping): boolean {
  return mapping.hostIp === undefined || mapping.hostIp === '0.0.0.0' || mapping.hostIp === '::';
}

/** Whether `docker run -p` publishes `mapping` on host addresses of `family`. */
export function publishedIn(mapping: PortMapping, family: ip.Family): boolean {
  return boundToEvery(mapping) || ip.parseIp(mapping.hostIp!)?.family === family;
}
