/**
 * The cluster-side commands of the `sluice` CLI: a thin front end over the
 * registry. Each returns the text to print; errors are thrown as SluiceError
 * and printed as one line by cli/main.ts.
 */
import { readFile } from 'node:fs/promises';
import { BadRequestError, ConflictError, NotFoundError } from '../errors';
import { BLOCK_SIZE_OPTION, defineNetwork, newNetworkRecord } from '../ipam/ipam-service';
import { parseCidr } from '../net/ip';
import { compilePolicies, policiesSelecting } from '../policy/policy-chains';
import { type Change, dryRun } from '../policy/dry-run';
import { explain, formatExplanation, resolvePair, type Packet } from '../policy/explain';
import { type Policy, parsePolicies, policyToYaml } from '../policy-document/policy';
import type { EndpointRecord, NetworkRecord, NodeRecord } from '../model';
import type { Registry } from '../store/registry';
import { releaseNode } from '../agent/reclaim';
import { table } from './table';

/** How a read command prints: aligned text for people, or JSON for scripts. */
export type Output = 'text' | 'json';

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export async function status(registry: Registry, output: Output = 'text'): Promise<string> {
  const [nodes, alive, blocks, endpoints, networks, policies, invalid] = await Promise.all([
    registry.listNodes(),
    registry.listAlive(),
    registry.listAllBlocks(),
    registry.listEndpoints(),
    registry.listNetworks(),
    registry.listPolicies(),
    registry.invalidRecords(),
  ]);
  const byKey = new Map(networks.map((n) => [n.key, n]));
  const policyState = (e: EndpointRecord): string => {
    const network = byKey.get(e.network);
    if (e.labels === null || !network) return 'fail-closed';
    return policiesSelecting(policies, network, e.labels).join(',') || 'default';
  };
  const owner = poolOwner(networks);
  const nodeBlocks = (name: string): string[] => blocks.filter((b) => b.node === name).map((b) => b.block);
  const nodeEndpoints = (name: string): number => endpoints.filter((e) => e.node === name).length;
  if (output === 'json') {
    return json({
      nodes: nodes.map((n) => ({ ...n, alive: alive.has(n.name), blocks: nodeBlocks(n.name), endpoints: nodeEndpoints(n.name) })),
      networks,
      endpoints: endpoints.map((e) => ({ ...e, policies: policyState(e) })),
      invalidRecords: invalid,
    });
  }
  const nodesV6 = nodes.some((n) => n.ip6 !== undefined);
  const endpointsV6 = endpoints.some((e) => e.addressV6 !== undefined);
  const nodeRows = nodes.map((n) => [
    n.name,
    liveness(n, alive.has(n.name)),
    n.ip,
    ...ipv6Cell(nodesV6, n.ip6),
    n.backend,
    n.version,
    nodeBlocks(n.name).join(',') || '-',
    String(nodeEndpoints(n.name)),
    n.wireguard ? `wireguard:${n.wireguard.implementation}` : 'none',
    n.lastApply ?? '-',
  ]);
  const errorRows = nodes.flatMap((n) => (n.lastError ? [[n.name, n.lastError.at, n.lastError.message]] : []));
  const networkRows = networks.map((n) => [owner(n).name ?? '-', n.subnet, `/${n.blockSize}`, n.gateway, n.managed ? 'sluice' : 'docker']);
  const endpointRows = endpoints.map((e) => [
    e.containerName ?? e.id.slice(0, 12),
    byKey.get(e.network)?.name ?? byKey.get(e.network)?.subnet ?? e.network,
    e.node,
    e.address,
    ...ipv6Cell(endpointsV6, e.addressV6),
    e.labels === null ? '(unknown)' : Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
    policyState(e),
  ]);
  return [
    'NODES',
    table(['NAME', 'LIVENESS', 'ADDRESS', ...ipv6Cell(nodesV6, IPV6_HEADER), 'BACKEND', 'VERSION', 'BLOCKS', 'ENDPOINTS', 'ENCRYPTION', 'LAST APPLY'], nodeRows),
    // Reported with liveness (every minute): the latest failure of each agent's background work.
    ...(errorRows.length === 0 ? [] : ['', 'NODE ERRORS (latest per node)', table(['NODE', 'AT', 'ERROR'], errorRows)]),
    '',
    'NETWORKS',
    table(['NAME', 'SUBNET', 'BLOCK', 'GATEWAY', 'DEFINED BY'], networkRows),
    '',
    'ENDPOINTS',
    table(['CONTAINER', 'NETWORK', 'NODE', 'ADDRESS', ...ipv6Cell(endpointsV6, IPV6_HEADER), 'LABELS', 'POLICIES'], endpointRows),
    // Only when there are some: agents ignore these keys, so someone should look at them.
    ...(invalid.length === 0
      ? []
      : ['', 'INVALID RECORDS (ignored by every agent)', table(['KEY', 'PROBLEM'], invalid.map((r) => [r.key, r.reason]))]),
  ].join('\n');
}

const IPV6_HEADER = 'IPV6 ADDRESS';

/** An IPv6 column's cell, only in a cluster where some row has an IPv6 address: IPv4-only output stays as it was. */
function ipv6Cell(shown: boolean, value: string | undefined): string[] {
  return shown ? [value ?? '-'] : [];
}

/**
 * The network a record stands for: an IPv6 pool has no name of its own and belongs to the
 * network whose settings.ipv6Subnet it is; every other record stands for itself.
 */
function poolOwner(networks: NetworkRecord[]): (network: NetworkRecord) => NetworkRecord {
  const owners = new Map(networks.flatMap((n) => (n.settings?.ipv6Subnet === undefined ? [] : [[n.settings.ipv6Subnet, n] as const])));
  return (network) => owners.get(network.subnet) ?? network;
}

/** A reclaimed node that came back is fenced: its containers from before lost their addresses. */
function liveness(node: NodeRecord, alive: boolean): string {
  const state = alive ? 'alive' : `dead (last seen ${node.lastSeen})`;
  if (!node.reclaimed) return state;
  const { by, at, fencedAt } = node.reclaimed;
  return `${state}, ${fencedAt === undefined ? '' : `fenced since ${fencedAt}: `}blocks reclaimed by ${by} at ${at}`;
}

export async function networkCreate(registry: Registry, name: string, subnetText: string, blockSize: number): Promise<string> {
  const subnet = parseCidr(subnetText);
  if (subnet?.family !== 4) throw new BadRequestError(`--subnet ${subnetText} is not an IPv4 CIDR such as 10.96.0.0/16`);
  if (blockSize < subnet.prefix || blockSize > 30) {
    throw new BadRequestError(`--${BLOCK_SIZE_OPTION} ${blockSize}: expected ${subnet.prefix} to 30`);
  }
  const wanted = newNetworkRecord(subnet, blockSize, { name, managed: true });
  const { network, created } = await defineNetwork(registry, (networks) => {
    if (networks.some((n) => n.name === name)) throw new ConflictError(`network ${name} already exists`);
    return wanted;
  });
  if (!created) throw new ConflictError(`subnet ${network.subnet} is already sluice network ${network.name ?? network.subnet}`);
  return `network ${name} (${network.subnet}) defined: every agent now creates it in Docker`;
}

export async function networkList(registry: Registry, output: Output = 'text'): Promise<string> {
  const [networks, dockerNets] = await Promise.all([registry.listNetworks(), registry.listDockerNets()]);
  const owner = poolOwner(networks);
  // Docker knows only the IPv4 network: its IPv6 pool is on the same nodes.
  const nodes = (n: NetworkRecord): string[] => [...new Set(dockerNets.filter((d) => d.network === owner(n).key).map((d) => d.node))];
  if (output === 'json') return json(networks.map((n) => ({ ...n, nodes: nodes(n) })));
  return table(
    ['NAME', 'SUBNET', 'GATEWAY', 'BLOCK', 'NODES'],
    networks.map((n) => [owner(n).name ?? '-', n.subnet, n.gateway, `/${n.blockSize}`, nodes(n).join(',') || '-']),
  );
}

export async function networkRemove(registry: Registry, name: string): Promise<string> {
  const network = (await registry.listNetworks()).find((n) => n.name === name || n.subnet === name);
  if (!network) throw new NotFoundError(`no sluice network named ${name}`);
  const endpoints = (await registry.listEndpoints()).filter((e) => e.network === network.key);
  if (endpoints.length > 0) {
    throw new ConflictError(`network ${name} still has ${endpoints.length} endpoint(s): stop its containers first`);
  }
  await registry.deleteNetwork(network.key);
  return `network ${name} removed: every agent now removes it from Docker`;
}

export async function nodeRemove(registry: Registry, name: string, gracePeriodSeconds: number, force: boolean): Promise<string> {
  const node = await registry.getNode(name);
  if (!node) throw new NotFoundError(`no node named ${name}`);
  if ((await registry.listAlive()).has(name)) throw new ConflictError(`node ${name} is alive: stop its agent first`);
  const deadFor = (Date.now() - Date.parse(node.record.lastSeen)) / 1000;
  if (deadFor < gracePeriodSeconds && !force) {
    throw new ConflictError(
      `node ${name} was last seen ${Math.round(deadFor)} s ago, within the grace period of ${gracePeriodSeconds} s: its containers may still run; pass --force if the host is really gone`,
    );
  }
  const { blocks, complete } = await releaseNode(registry, name, node.modRevision);
  if (!complete || !(await registry.deleteDeadNode(name, node.modRevision))) {
    throw new ConflictError(`node ${name} came back or changed while being removed (${blocks.length} block(s) released): check \`sluice status\` and try again`);
  }
  return `node ${name} removed; ${blocks.length} block(s) released`;
}

/** With `dryRun`, what would change instead of applying. */
export interface WriteOptions {
  dryRun?: boolean;
  output?: Output;
}

export async function policyApply(registry: Registry, file: string, options: WriteOptions = {}): Promise<string> {
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new BadRequestError(`cannot read ${file}: ${err.code ?? err.message}`);
  });
  // Everything is validated before anything is written: a bad document applies nothing.
  const policies = parsePolicies(text);
  if (options.dryRun === true) {
    const names = new Set(policies.map((p) => p.name));
    return previewChange(registry, (current) => [...current.filter((p) => !names.has(p.name)), ...policies], options.output);
  }
  for (const policy of policies) await registry.putPolicy(policy);
  return policies.map((p) => `policy ${p.name} applied`).join('\n');
}

export async function policyList(registry: Registry, output: Output = 'text'): Promise<string> {
  const policies = await registry.listPolicies();
  if (output === 'json') return json(policies);
  return table(
    ['NAME', 'ORDER', 'NETWORK', 'SELECTOR', 'INGRESS', 'EGRESS'],
    policies.map((p) => [p.name, String(p.order), p.network ?? '*', p.selector.toString(), String(p.ingress?.length ?? 0), String(p.egress?.length ?? 0)]),
  );
}

export async function policyGet(registry: Registry, name: string, output: Output = 'text'): Promise<string> {
  const policy = (await registry.listPolicies()).find((p) => p.name === name);
  if (!policy) throw new NotFoundError(`no policy named ${name}`);
  return output === 'json' ? json(policy) : policyToYaml(policy).trimEnd();
}

export async function policyRemove(registry: Registry, name: string, options: WriteOptions = {}): Promise<string> {
  if (options.dryRun === true) {
    if (!(await registry.listPolicies()).some((p) => p.name === name)) throw new NotFoundError(`no policy named ${name}`);
    return previewChange(registry, (current) => current.filter((p) => p.name !== name), options.output);
  }
  if (!(await registry.deletePolicy(name))) throw new NotFoundError(`no policy named ${name}`);
  return `policy ${name} removed`;
}

/** The verdict changes `change` would make to the stored policies; writes nothing. */
async function previewChange(registry: Registry, change: (current: Policy[]) => Policy[], output: Output = 'text'): Promise<string> {
  const [networks, endpoints, current] = await Promise.all([registry.listNetworks(), registry.listEndpoints(), registry.listPolicies()]);
  const changes = dryRun(networks, endpoints, current, change(current));
  if (output === 'json') return json({ changes });
  if (changes.length === 0) return 'dry run: no verdict would change';
  const rows = changes.map((c: Change) => [c.from, c.to, c.protocol, c.ports?.join(',') ?? '-', c.before, c.after]);
  return `dry run: nothing written\n${table(['FROM', 'TO', 'PROTOCOL', 'PORTS', 'BEFORE', 'AFTER'], rows)}`;
}

/** `sluice policy explain FROM TO`: the verdict for one packet and why, from the stored cluster. */
export async function policyExplain(registry: Registry, from: string, to: string, packet: Packet, output: Output = 'text'): Promise<string> {
  if (packet.protocol === 'icmp' ? packet.port !== undefined : packet.port === undefined) {
    throw new BadRequestError(packet.protocol === 'icmp' ? 'icmp has no ports: leave out --port' : `--port N is needed for ${packet.protocol}`);
  }
  const [networks, endpoints, policies] = await Promise.all([registry.listNetworks(), registry.listEndpoints(), registry.listPolicies()]);
  const [sender, receiver] = resolvePair(endpoints, from, to);
  const explanation = explain({ networks: new Map(networks.map((n) => [n.key, n])), policies: compilePolicies(policies) }, sender, receiver, packet);
  return output === 'json' ? json(explanation) : formatExplanation(sender, receiver, packet, explanation);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
