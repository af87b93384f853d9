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

/** iptables matches every Sluice veth with `<prefix>+`. */
export { HOST_IFNAME_PREFIX } from '../dataplane/names';

/** Every sluice network's subnet, for "from another sluice network" and masquerading. */
export const POOLS_SET = 'sluice-pools';
/**
 * hash:net,iface of "ADDRESS,HOST_VETH" for each local endpoint whose policy
 * is known (labels and network known): the only sources and destinations a
 * sluice veth may carry, so anti-spoofing and fail-closed are one set match.
 */
export const LOCAL_SET = 'sluice-local';
/** hash:ip of the local endpoints some policy with ingress (egress) rules selects: default-deny for them. */
export const INGRESS_GOVERNED_SET = 'sluice-ingress-governed';
export const EGRESS_GOVERNED_SET = 'sluice-egress-governed';

/**
 * The control plane no container may open (see protect.ts): hash:ip,port of
 * "ADDRESS,tcp:PORT", and hash:ip of addresses closed on every port and protocol.
 */
export const PROTECTED_SET = 'sluice-protected';
export const PROTECTED_ADDRESSES_SET = 'sluice-protected-addrs';

/** The egress (from-workload) and ingress (to-workload) chains, jumped to from the top-level chains named in dataplane/names.ts. */
export const FROM_WORKLOAD_CHAIN = 'SLUICE-FROM-WL';
export const TO_WORKLOAD_CHAIN = 'SLUICE-TO-WL';

const SELECTOR_SET_PREFIX = 'sluice-s-';
const NET_SET_PREFIX = 'sluice-n-';
const TARGET_SET_PREFIX = 'sluice-t-';

/** base64url of SHA-224, cut to `length` characters: 6 bits per character, so 18 characters keep 108 bits. */
function shortHash(text: string, length: number): string {
  return createHash('sha224').update(text).digest('base64url').slice(0, length);
}

/** The hash:ip set of the addresses of the endpoints a selector matches; `canonical` is Selector.toString(). */
export function selectorSetName(canonical: string): string {
  return SELECTOR_SET_PREFIX + shortHash(canonical, MAX_IPSET_NAME - SELECTOR_SET_PREFIX.length);
}

/**
 * The hash:ip set of the local endpoints a policy applies to: its selector
 * (canonical text) within its `network:` (undefined: every network). Named by
 * content, so policies selecting alike share it and a rename changes nothing.
 */
export function targetSetName(canonical: string, network: string | undefined): string {
  return TARGET_SET_PREFIX + shortHash(JSON.stringify([network ?? null, canonical]), MAX_IPSET_NAME - TARGET_SET_PREFIX.length);
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

