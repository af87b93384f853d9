/**
 * Names of the kernel objects the dataplane owns. Everything Sluice creates is
 * recognisable by name or route protocol, so the dataplane can list, diff and
 * delete its own objects and never touch anyone else's.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../errors';

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
/** Scratch set for atomic membership replacement (create, fill, swap, destroy); never a desired set. */
export const TEMP_IPSET = 'sluice-tmp';

/**
 * `slv+` in iptables must match veths only: not sluice0 or sluice.vxlan,
 * whose traffic (tunnelled peers, the gateway) is not a container's.
 */
export const HOST_IFNAME_PREFIX = 'slv';
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
