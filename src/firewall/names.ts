/**
 * Names of every kernel object Sluice owns: devices, routes, chains and ipsets,
 * in one place for the policy compiler (which names what it wants) and the
 * dataplane (which finds, diffs and deletes its own). Everything Sluice creates
 * is recognisable by name or route protocol (`sluice-` sets, `SLUICE-` chains,
 * `sl` devices), so no one else's object is ever touched. Names built from user
 * text (selectors, CIDR lists, policy names) are hashed, since the kernel
 * limits their length and the text may hold characters iptables would not take.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../errors';
import type { Family } from '../net/ip';

/**
 * Route protocol of every route Sluice installs (`proto 252`). Unassigned in
 * iproute2's rt_protos; the number is used in commands and parsing since
 * /etc/iproute2/rt_protos need not name it.
 */
export const ROUTE_PROTOCOL = 252;
export const ROUTE_PROTOCOL_NAME = 'sluice';

/** Holds each network's virtual gateway as ADDR/32; the host answers ARP for them on every veth. */
export const GATEWAY_DEVICE = 'sluice0';
export const VXLAN_DEVICE = 'sluice.vxlan';
export const WIREGUARD_DEVICE = 'sluice.wg';

export const CHAIN_PREFIX = 'SLUICE-';
export const FORWARD_CHAIN = 'SLUICE-FORWARD';
/** Traffic to the host itself: containers reach host services only as their egress policy allows. */
export const INPUT_CHAIN = 'SLUICE-INPUT';
export const DNAT_CHAIN = 'SLUICE-DNAT';
export const POSTROUTING_CHAIN = 'SLUICE-POSTROUTING';
/** Comment on the rules that jump from built-in chains to ours, so they are found again. */
export const HOOK_COMMENT = 'sluice hook';

export const IPSET_PREFIX = 'sluice-';
/**
 * IPv6's sets share the kernel's one ipset namespace with IPv4's: the same
 * names with this prefix instead (as long, so every name still fits). Chains
 * keep their names: ip6tables has tables of its own.
 */
export const IPV6_IPSET_PREFIX = 'sluice6';
/** Scratch set for atomic membership replacement (create, fill, swap, destroy); never a desired set. */
export const TEMP_IPSET = 'sluice-tmp';

/** The prefix of one family's sets: each family's firewall owns (reads, diffs, destroys) only its own. */
export function ipsetPrefix(family: Family): string {
  return family === 4 ? IPSET_PREFIX : IPV6_IPSET_PREFIX;
}

/** One family's scratch set (`sluice-tmp`, `sluice6tmp`): a swap of one never touches the other's. */
export function tempIpset(family: Family): string {
  return ipsetPrefix(family) + TEMP_IPSET.slice(IPSET_PREFIX.length);
}

/** Sets of either family are Sluice's. */
export function isSluiceIpset(name: string): boolean {
  return name.startsWith(IPSET_PREFIX) || name.startsWith(IPV6_IPSET_PREFIX);
}

/**
 * `slv+` in iptables must match veths only: not sluice0 or sluice.vxlan,
 * whose traffic (tunnelled peers, the gateway) is not a container's.
 */
export const HOST_IFNAME_PREFIX = 'slv';
/** Every Sluice veth's host end, as an iptables interface pattern. */
export const ALL_SLUICE_IFACES = `${HOST_IFNAME_PREFIX}+`;
const CONTAINER_IFNAME_PREFIX = 'sc';
/** 3 + 11 = 14 characters, within IFNAMSIZ (15); 44 bits keep collisions out of reach on one host. */
const IFNAME_ID_LENGTH = 11;
const HOST_IFNAME = new RegExp(`^${HOST_IFNAME_PREFIX}[0-9a-f]{${IFNAME_ID_LENGTH}}$`);

export interface EndpointIfnames {
  hostIfname: string;
  containerIfname: string;
}

/** Veth names for a Docker endpoint ID (64 hex characters): `slv` and `sc` plus its first 11. */
export function endpointIfnames(endpointId: string): EndpointIfnames {
  const id = endpointId.toLowerCase().slice(0, IFNAME_ID_LENGTH);
  if (!/^[0-9a-f]+$/.test(id) || id.length < IFNAME_ID_LENGTH) {
    throw new BadRequestError(`endpoint ID "${endpointId}" is not hexadecimal with at least ${IFNAME_ID_LENGTH} digits`);
  }
  return { hostIfname: HOST_IFNAME_PREFIX + id, containerIfname: CONTAINER_IFNAME_PREFIX + id };
}

/** A container's MAC, derived from its address (locally administered, like Docker's bridge does with 02:42). */
export function containerMac(address: string): string {
  const bytes = address.split('.').map((b) => Number(b).toString(16).padStart(2, '0'));
  return ['02', '73', ...bytes].join(':');
}

export function isSluiceHostIfname(name: string): boolean {
  return HOST_IFNAME.test(name);
}

/**
 * A stable MAC for this host's VXLAN device: peers keep reaching it after the
 * device is re-created (reboot, repair), before the lease carries a new MAC.
 * Locally administered unicast (first octet 0x0e).
 */
export function vxlanMac(vni: number, localIp: string): string {
  const digest = createHash('sha256').update(`${vni}/${localIp}`).digest();
  return ['0e', ...[...digest.subarray(0, 5)].map((byte) => byte.toString(16).padStart(2, '0'))].join(':');
}
/** The kernel's limit on ipset names (IPSET_MAXNAMELEN 32, including the NUL). */
export const MAX_IPSET_NAME = 31;
/** The kernel's limit on iptables chain names (XT_EXTENSION_MAXNAMELEN 29, including the NUL); Felix uses the same. */
export const MAX_CHAIN_NAME = 28;


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

/** The egress (from-workload) and ingress (to-workload) chains, jumped to from SLUICE-FORWARD and SLUICE-INPUT. */
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

