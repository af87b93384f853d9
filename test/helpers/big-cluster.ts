/**
 * The records of a large cluster, as the agents and IPAM write them: one network, hosts of
 * `perNode` containers each, alive, one block per host, endpoints with a few labels (~400 bytes a
 * value, like real ones), written straight into an etcd in parallel transactions.
 */
import { Etcd3 } from 'etcd3';
import type { BlockRecord, EndpointRecord, NetworkRecord, NodeRecord } from '../../src/model';
import { formatIp } from '../../src/net/ipv4';
import { parsePolicies, type Policy } from '../../src/policy-document/policy';
import { keys } from '../../src/store/keys';

export const BIG_NET: NetworkRecord = { key: '10.96.0.0-12', subnet: '10.96.0.0/12', blockSize: 26, gateway: '10.96.0.1', name: 'big', managed: false };
const BASE = (10 << 24) | (96 << 16);
/** etcd's default --max-txn-ops is 128. */
const TXN_PUTS = 100;
const PARALLEL_TXNS = 8;

export interface Put {
  key: string;
  value: string;
}

export function nodeName(index: number): string {
  return `host-${String(index).padStart(4, '0')}`;
}

/** The underlay address of host `index`. */
export function nodeIp(index: number): string {
  return formatIp((192 << 24) | (168 << 16) | (index + 10));
}

/** The network, the hosts and their blocks, and `endpoints` endpoints spread `perNode` a host. */
export function bigCluster(endpoints: number, perNode = 20): Put[] {
  const puts: Put[] = [{ key: keys.network(BIG_NET.key), value: JSON.stringify(BIG_NET) }];
  const nodes = Math.ceil(endpoints / perNode);
  for (let n = 0; n < nodes; n++) {
    const node: NodeRecord = {
      name: nodeName(n),
      ip: nodeIp(n),
      backend: 'vxlan',
      vtepMac: `0e:00:00:00:${hex2(n >> 8)}:${hex2(n)}`,
      version: '0.1.0',
      lastSeen: '2026-11-27T12:00:00.000Z',
    };
    const block: BlockRecord = { network: BIG_NET.key, block: `${formatIp(BASE + n * 64)}/26`, node: node.name };
    puts.push({ key: keys.node(node.name), value: JSON.stringify(node) });
    puts.push({ key: keys.aliveNode(node.name), value: JSON.stringify({ since: node.lastSeen }) });
    puts.push({ key: keys.block(BIG_NET.key, block.block), value: JSON.stringify(block) });
  }
  for (let i = 0; i < endpoints; i++) {
    const endpoint = bigEndpoint(i, Math.floor(i / perNode), i % perNode);
    puts.push({ key: keys.endpoint(endpoint.node, endpoint.id), value: JSON.stringify(endpoint) });
  }
  return puts;
}

/**
 * Endpoint number `serial` (its ID and labels follow from it), on host `node` in address slot
 * `slot` (0..61 of the host's /26): a churn can stop one and start another in the freed slot.
 */
export function bigEndpoint(serial: number, node: number, slot: number): EndpointRecord {
  const id = (serial.toString(16).padStart(8, '0') + 'ab'.repeat(28)).slice(0, 64);
  return {
    id,
    network: BIG_NET.key,
    node: nodeName(node),
    address: formatIp(BASE + node * 64 + 2 + slot),
    hostIfname: `slv${id.slice(0, 11)}`,
    containerId: id.split('').reverse().join(''),
    containerName: `app-${node}-${slot}`,
    labels: { role: serial % 3 === 0 ? 'web' : 'client', team: `team-${node % 17}`, 'com.example.release': `2026.11.${serial % 28}` },
    ports: [],
  };
}

/**
 * `count` policies over bigCluster's labels, each selecting the web servers of one team and
 * release (~1 in 476 endpoints) and letting in the clients of two teams: distinct selectors, as
 * many ipsets and chains as a cluster of as many teams' policies would have.
 */
export function bigPolicies(count: number): Policy[] {
  const docs = Array.from({ length: count }, (_, i) => {
    const team = (t: number) => `'team-${t % 17}'`;
    return [
      'kind: NetworkPolicy',
      `name: big-${String(i).padStart(4, '0')}`,
      `selector: role == 'web' && team == ${team(i)} && com.example.release == '2026.11.${Math.floor(i / 17) % 28}'`,
      'ingress:',
      '  - action: allow',
      '    protocol: tcp',
      `    from: role == 'client' && team in {${team(i)}, ${team(i + 1)}}`,
      "    ports: [80, '8000-8100']",
    ].join('\n');
  });
  return parsePolicies(docs.join('\n---\n'));
}

/** Writes every put into the etcd at `endpoint`, a few transactions at a time. */
export async function writeAll(endpoint: string, puts: readonly Put[]): Promise<void> {
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL_TXNS }, async () => {
        while (next < puts.length) {
          const batch = puts.slice(next, (next += TXN_PUTS));
          await client.kv.txn({ success: batch.map(({ key, value }) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })) });
        }
      }),
    );
  } finally {
    client.close();
  }
}

function hex2(n: number): string {
  return (n & 255).toString(16).padStart(2, '0');
}
