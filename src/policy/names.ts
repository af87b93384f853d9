/**
 * Names of the kernel objects the policy compiler emits. Everything Sluice
 * owns is prefixed (`sluice-` sets, `SLUICE-` chains) so the dataplane can tell
 * its objects from everyone else's. Names built from user text (selectors,
 * CIDR lists, policy names) are hashed, since the kernel limits their length
 * and the text may hold characters iptables would not take.
 */
import { createHash } from 'node:crypto';

/** The kernel's limit on ipset names (IPSET_MAXNAMELEN 32, including the NUL). */
export const MAX_IPSET_NAME = 31;
/** The kernel's limit on iptables chain names (XT_EXTENSION_MAXNAMELEN 29, including the NUL); Felix uses the same. */
export const MAX_CHAIN_NAME = 28;

/**
 * Host-side veth names start with this; iptables matches every Sluice
 * interface with `sl+`. Must equal the prefix dataplane/names.ts gives veths
 * (kept there unexported).
 */
export const HOST_IFNAME_PREFIX = 'sl';

/** Every sluice network's subnet, for "from another sluice network" and masquerading. */
export const POOLS_SET = 'sluice-pools';

/** Dispatch chains from SLUICE-FORWARD (the top-level chains are named in dataplane/names.ts). */
export const FROM_WORKLOAD_CHAIN = 'SLUICE-FROM-WL';
export const TO_WORKLOAD_CHAIN = 'SLUICE-TO-WL';

const SELECTOR_SET_PREFIX = 'sluice-s-';
const NET_SET_PREFIX = 'sluice-n-';

/** base64url of SHA-224, cut to `length` characters: 6 bits per character, so 18 characters keep 108 bits. */
function shortHash(text: string, length: number): string {
  return createHash('sha224').update(text).digest('base64url').slice(0, length);
}

/** The hash:ip set of the addresses of the endpoints a selector matches; `canonical` is Selector.toString(). */
export function selectorSetName(canonical: string): string {
  return SELECTOR_SET_PREFIX + shortHash(canonical, MAX_IPSET_NAME - SELECTOR_SET_PREFIX.length);
}

/** The hash:net set holding exactly `cidrs`: equal lists (in any order) share one set. */
export function netSetName(cidrs: readonly string[]): string {
  const key = [...new Set(cidrs)].sort().join(',');
  return NET_SET_PREFIX + shortHash(key, MAX_IPSET_NAME - NET_SET_PREFIX.length);
}

/** The chain holding a policy's ingress (`pi`) or egress (`po`) rules, shared by every endpoint it selects. */
export function policyChainName(direction: 'ingress' | 'egress', policyName: string): string {
  const prefix = direction === 'ingress' ? 'SLUICE-pi-' : 'SLUICE-po-';
  return prefix + shortHash(policyName, MAX_CHAIN_NAME - prefix.length);
}

/**
 * The chain of traffic to (`tw`) or from (`fw`) one local endpoint. Interface
 * names are at most 15 characters (IFNAMSIZ), so the result stays within 25.
 */
export function endpointChainName(direction: 'to' | 'from', hostIfname: string): string {
  return (direction === 'to' ? 'SLUICE-tw-' : 'SLUICE-fw-') + hostIfname;
}
