/**
 * The `docker network create` options CreateNetwork carries (`--internal`,
 * `-o`, `--aux-address`), checked and turned into the NetworkSettings every
 * host's create of a network must agree on, and the `-p` mappings Sluice can
 * publish. Pure: a refusal is thrown before anything is stored.
 */
import { BadRequestError, NotSupportedError } from '../errors';
import { MAX_MTU, MIN_MTU, type NetworkSettings, type PortMapping } from '../model';
import type { CreateNetworkRequest, IpamData } from '../protocol/services';

/** `-o` key of Docker's bridge driver for the containers' MTU; the only `-o` Sluice takes. */
export const MTU_OPTION = 'com.docker.network.driver.mtu';

/** The settings of a network whose pool is `data`; `ipv6`: its IPv6 pool, on a dual-stack network (`--ipv6`). */
export function networkSettings(req: CreateNetworkRequest, data: IpamData, ipv6?: IpamData): NetworkSettings {
  const unknown = Object.keys(req.generic).filter((key) => key !== MTU_OPTION);
  if (unknown.length > 0) {
    throw new NotSupportedError(`sluice does not know the option -o ${unknown.sort().join(', -o ')}: the only -o it takes is ${MTU_OPTION}=N`);
  }
  const mtuText = req.generic[MTU_OPTION];
  const mtu = mtuText === undefined ? undefined : Number(mtuText);
  if (mtu !== undefined && (!/^\d+$/.test(mtuText ?? '') || mtu < MIN_MTU || mtu > MAX_MTU)) {
    throw new BadRequestError(`-o ${MTU_OPTION}=${mtuText}: expected an MTU from ${MIN_MTU} to ${MAX_MTU}, e.g. 1400`);
  }
  // Docker sends aux addresses as CIDR (address/pool prefix); the record keeps the address.
  const auxAddresses = Object.fromEntries(Object.entries(data.auxAddresses).map(([name, cidr]) => [name, cidr.split('/')[0]!]));
  return { internal: req.internal, ...(mtu !== undefined && { mtu }), auxAddresses, ...(ipv6 !== undefined && { ipv6Subnet: ipv6.pool }) };
}

/** How `wanted` differs from the settings the network was created with, as a user would fix it; undefined if it does not. */
export function settingsMismatch(existing: NetworkSettings, wanted: NetworkSettings): string | undefined {
  if (existing.internal !== wanted.internal) return existing.internal ? 'with --internal' : 'without --internal';
  if (existing.mtu !== wanted.mtu) return existing.mtu === undefined ? `without -o ${MTU_OPTION}` : `with -o ${MTU_OPTION}=${existing.mtu}`;
  const aux = (s: NetworkSettings) => Object.entries(s.auxAddresses).map(([name, ip]) => `--aux-address ${name}=${ip}`).sort().join(' ');
  if (aux(existing) !== aux(wanted)) return aux(existing) === '' ? 'without --aux-address' : `with ${aux(existing)}`;
  if (existing.ipv6Subnet !== wanted.ipv6Subnet) return existing.ipv6Subnet === undefined ? 'without --ipv6' : `with --ipv6 --subnet ${existing.ipv6Subnet}`;
  return undefined;
}

/**
 * Why Sluice cannot publish `ports`, or undefined if it can. Docker learns a
 * published port only from the driver's EndpointOperInfo, as a Go
 * []types.PortBinding; a remote driver's reply is decoded JSON ([]interface{})
 * and never matches, so a host port Sluice picked for `-p 80` or `-P` could
 * never show in `docker port`: the user must choose it.
 */
export function unpublishable(ports: readonly PortMapping[]): string | undefined {
  const sctp = ports.find((p) => p.proto === 'sctp');
  if (sctp) return `-p ${sctp.containerPort}/sctp: sluice publishes tcp and udp ports only`;
  const unchosen = ports.find((p) => p.hostPort === 0);
  if (unchosen) {
    return (
      `-p ${unchosen.containerPort}/${unchosen.proto} (or -P) has no host port: sluice cannot tell Docker a port it picks ` +
      `(docker port would not show it), so give one, e.g. -p 8080:${unchosen.containerPort}`
    );
  }
  return undefined;
}
