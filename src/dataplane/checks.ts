/**
 * Pure checks every Dataplane makes before touching anything, shared by the
 * Linux one and the recording fake so both accept and refuse the same input.
 * A refusal names the value; nothing has changed when it comes.
 */
import { ConflictError, DataplaneError } from '../errors';
import { isSluiceHostIfname } from '../firewall/names';
import * as ip from '../net/ip';
import type { BlockRoute } from '../routing/routes';
import type { EndpointLink } from './dataplane';

/** The IPv6 half of an endpoint, when it has one. */
export interface EndpointV6 {
  address: string;
  gateway: string;
}

/** Refuses a link the dataplane would never list again or half-plumb; returns its IPv6 half, if any. */
export function checkEndpointLink(link: EndpointLink): EndpointV6 | undefined {
  // Any other name would never be listed, so never cleaned up.
  if (!isSluiceHostIfname(link.hostIfname)) throw new DataplaneError(`"${link.hostIfname}" is not a Sluice interface name`);
  const { addressV6: address, gatewayV6: gateway } = link;
  if (address === undefined && gateway === undefined) return undefined;
  if (address === undefined || gateway === undefined) {
    throw new DataplaneError(`endpoint ${link.hostIfname}: an IPv6 address needs its network's IPv6 gateway, and a gateway its address`);
  }
  return { address: canonicalAddress(address, 6, 'endpoint IPv6 address'), gateway: canonicalAddress(gateway, 6, 'IPv6 gateway') };
}

/** addEndpoint's refusal of a veth name in use: taking it over would hand another endpoint's veth to this one. */
export function vethTaken(hostIfname: string): ConflictError {
  return new ConflictError(
    `veth ${hostIfname} exists already: another endpoint's (endpoint IDs sharing their first 11 digits), or a leftover that reconciliation with Docker removes`,
  );
}

/** An address of `family` (either if undefined) in canonical form: as the kernel prints it, so comparisons with its output hold. */
export function canonicalAddress(text: string, family: ip.Family | undefined, what: string): string {
  const address = ip.parseIp(text);
  if (address === undefined || (family !== undefined && address.family !== family)) {
    throw new DataplaneError(`${what} "${text}" is not an ${family === undefined ? 'IP' : `IPv${family}`} address`);
  }
  return ip.formatIp(address);
}

/** The family of an address or CIDR, from its text (valid or not: checked elsewhere). */
export function familyOf(block: string): ip.Family {
  return block.includes(':') ? 6 : 4;
}

/**
 * The routes by block in canonical CIDR form, either family. Refuses what the
 * kernel would refuse halfway through a batch: an IPv6 block via an IPv4 next
 * hop, or the reverse.
 */
export function routesByBlock(routes: readonly BlockRoute[]): Map<string, BlockRoute> {
  const byBlock = new Map<string, BlockRoute>();
  for (const route of routes) {
    const cidr = ip.parseCidr(route.block);
    if (cidr === undefined) throw new DataplaneError(`route block "${route.block}" is not a CIDR`);
    const block = ip.formatCidr(cidr);
    if (route.kind === 'host-gw') {
      const via = canonicalAddress(route.via, cidr.family, `next hop of ${block}`);
      byBlock.set(block, { ...route, block, via });
    } else {
      byBlock.set(block, { ...route, block });
    }
  }
  return byBlock;
}
