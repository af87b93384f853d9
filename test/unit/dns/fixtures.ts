/** A cluster for the resolver tests: two networks, containers on one or both, replicas on two hosts. */
import * as dnsPacket from 'dns-packet';
import type { DecodedPacket, RecordType } from 'dns-packet';
import type { EndpointRecord, NetworkRecord } from '../../../src/model';

export const appnet: NetworkRecord = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1', name: 'appnet' };
export const dbnet: NetworkRecord = { key: '10.97.0.0-16', subnet: '10.97.0.0/16', blockSize: 26, gateway: '10.97.0.1', name: 'DBnet' };

function endpoint(id: string, network: NetworkRecord, address: string, containerName: string, aliases: string[] = [], node = 'h1'): EndpointRecord {
  return { id, network: network.key, node, address, hostIfname: `slv${id}`, containerId: `c-${containerName}`, containerName, aliases, labels: {}, ports: [] };
}

/** On appnet only. */
export const client = endpoint('client', appnet, '10.96.0.2', 'client');
/** Two replicas of compose service "web" on two hosts (the first lists its alias twice, in two cases). */
export const web1 = endpoint('web1', appnet, '10.96.0.3', 'proj-web-1', ['web', 'WEB']);
export const web2 = endpoint('web2', appnet, '10.96.0.66', 'proj-web-2', ['web'], 'h2');
/** On dbnet only: appnet containers must never see it. */
export const db = endpoint('db', dbnet, '10.97.0.2', 'Postgres', ['db']);
/** One container on both networks: its endpoints share a container ID. */
export const apiOnApp = endpoint('api-a', appnet, '10.96.0.4', 'api', ['backend']);
export const apiOnDb = endpoint('api-d', dbnet, '10.97.0.3', 'api', ['backend']);

export const networks = [appnet, dbnet];
export const endpoints = [client, web1, web2, db, apiOnApp, apiOnDb];

/**
 * The same cluster dual-stack: appnet and dbnet with IPv6 pools (their own NetworkRecords, linked
 * by settings.ipv6Subnet); client stays IPv4-only.
 */
export const appnet6: NetworkRecord = { key: 'fd00:96::-64', subnet: 'fd00:96::/64', blockSize: 122, gateway: 'fd00:96::1' };
export const dbnet6: NetworkRecord = { key: 'fd00:97::-64', subnet: 'fd00:97::/64', blockSize: 122, gateway: 'fd00:97::1' };
export const dualNetworks: NetworkRecord[] = [
  { ...appnet, settings: { internal: false, auxAddresses: {}, ipv6Subnet: appnet6.subnet } },
  { ...dbnet, settings: { internal: false, auxAddresses: {}, ipv6Subnet: dbnet6.subnet } },
  appnet6,
  dbnet6,
];
export const web1Dual: EndpointRecord = { ...web1, addressV6: 'fd00:96::3' };
export const web2Dual: EndpointRecord = { ...web2, addressV6: 'fd00:96::42' };
export const dbDual: EndpointRecord = { ...db, addressV6: 'fd00:97::2' };
export const apiOnAppDual: EndpointRecord = { ...apiOnApp, addressV6: 'fd00:96::4' };
export const apiOnDbDual: EndpointRecord = { ...apiOnDb, addressV6: 'fd00:97::3' };
export const dualEndpoints = [client, web1Dual, web2Dual, dbDual, apiOnAppDual, apiOnDbDual];

/** A query as a client sends it, decoded as the server sees it. */
export function query(name: string, type: RecordType | 'ANY' = 'A', flags = dnsPacket.RECURSION_DESIRED): DecodedPacket {
  return dnsPacket.decode(dnsPacket.encode({ type: 'query', id: 4242, flags, questions: [{ name, type: type as RecordType }] }));
}
