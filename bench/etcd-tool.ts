// Writes the records of fake nodes straight to the store, through the Registry the agents read
// with, so they see exactly what a real node would write. Run in the lab's underlay namespace:
//
//   node etcd-tool.js STORE_URL claim-blocks NODE NODE_IP NET FIRST_IP COUNT GAP_MS
//       registers NODE, then claims COUNT consecutive blocks from the one holding FIRST_IP, one every
//       GAP_MS (jittered); prints {"block","at"} per claim, at = when the create returned
//   node etcd-tool.js STORE_URL fake-endpoints NODE NODE_IP NET FIRST_IP COUNT APPS
//       registers NODE with COUNT endpoints from FIRST_IP on, labelled app=app<i mod APPS>
//   node etcd-tool.js STORE_URL remove-node NODE        its endpoints, blocks and node record
//   node etcd-tool.js STORE_URL remove-policies PREFIX  every policy whose name starts with PREFIX
//   node etcd-tool.js STORE_URL watch-policies          until killed: {"name","at"} per policy
//       change, at = when the watch (as the agents' do) delivered it
import { createHash } from 'node:crypto';
import { blockOf, formatCidr, formatIp, parseIp } from '../src/net/ipv4';
import type { EndpointRecord, NodeRecord } from '../src/model';
import { keys, leaf } from '../src/store/keys';
import { loadStoreSettings } from '../src/config';
import { openStore } from '../src/store/open-store';
import { Registry } from '../src/store/registry';

const PARALLEL = 64;

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function print(value: object): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function nodeRecord(name: string, ip: string): NodeRecord {
  return { name, ip, backend: 'host-gw', version: 'bench', lastSeen: new Date().toISOString() };
}

/** Runs fn over items, PARALLEL at a time. */
async function each<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
    }),
  );
}

async function claimBlocks(registry: Registry, [node, ip, net, first, count, gap]: string[]): Promise<void> {
  const network = (await registry.getNetwork(net!))?.record;
  const firstIp = parseIp(first!);
  if (!network || firstIp === undefined) throw new Error(`no network ${net} or bad address ${first}`);
  const start = blockOf(firstIp, network.blockSize);
  await registry.putNode(nodeRecord(node!, ip!));
  // Let the agents take the new node in (one route lookup each) before the first claim.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const step = 2 ** (32 - network.blockSize);
  for (let i = 0; i < Number(count); i++) {
    const block = formatCidr({ base: start.base + i * step, prefix: network.blockSize });
    if (!(await registry.claimBlock({ network: net!, block, node: node! }))) throw new Error(`block ${block} is already held`);
    print({ block, at: nowMs() });
    // Jitter so the claims do not fall into step with any periodic work of the agents.
    await new Promise((resolve) => setTimeout(resolve, Number(gap) * (0.75 + Math.random() / 2)));
  }
}

async function fakeEndpoints(registry: Registry, [node, ip, net, firstIp, count, apps]: string[]): Promise<void> {
  const base = parseIp(firstIp!);
  if (base === undefined) throw new Error(`bad address ${firstIp}`);
  await registry.putNode(nodeRecord(node!, ip!));
  const tiers = ['web', 'api', 'db', 'cache'];
  const endpoints = Array.from({ length: Number(count) }, (_, i): EndpointRecord => {
    const id = createHash('sha256').update(`${node}/${i}`).digest('hex');
    return {
      id,
      network: net!,
      node: node!,
      address: formatIp(base + i),
      hostIfname: `slv${id.slice(0, 11)}`,
      containerId: createHash('sha256').update(`container ${node}/${i}`).digest('hex'),
      containerName: `${node}-${i}`,
      labels: { app: `app${i % Number(apps)}`, tier: tiers[i % tiers.length]!, bench: 'fake' },
      ports: [],
    };
  });
  await each(endpoints, (e) => registry.putEndpoint(e));
  print({ endpoints: endpoints.length });
}

async function removeNode(registry: Registry, [node]: string[]): Promise<void> {
  const endpoints = await registry.listEndpoints(node);
  await each(endpoints, (e) => registry.deleteEndpoint(node!, e.id));
  const blocks = (await registry.listAllBlocks()).filter((b) => b.node === node);
  await each(blocks, (b) => registry.releaseBlock(b.network, b.block));
  await registry.deleteNode(node!);
  print({ endpoints: endpoints.length, blocks: blocks.length });
}

async function removePolicies(registry: Registry, [prefix]: string[]): Promise<void> {
  const names = (await registry.listPolicies()).map((p) => p.name).filter((name) => name.startsWith(prefix!));
  await each(names, (name) => registry.deletePolicy(name));
  print({ policies: names.length });
}

async function watchPolicies(registry: Registry): Promise<void> {
  await new Promise((_, reject) => {
    registry.store.watch(keys.policies, 0, {
      onEvents: (events) => {
        const at = nowMs();
        for (const event of events) print({ name: leaf(event.type === 'put' ? event.kv.key : event.key), at });
      },
      onReset: (reason) => reject(new Error(reason)),
    });
  });
}

const COMMANDS: Record<string, (registry: Registry, args: string[]) => Promise<void>> = {
  'claim-blocks': claimBlocks,
  'fake-endpoints': fakeEndpoints,
  'remove-node': removeNode,
  'remove-policies': removePolicies,
  'watch-policies': watchPolicies,
};

async function main(): Promise<void> {
  const [url, command, ...args] = process.argv.slice(2);
  const fn = command === undefined ? undefined : COMMANDS[command];
  if (url === undefined || fn === undefined) throw new Error(`usage: etcd-tool STORE_URL ${Object.keys(COMMANDS).join('|')} ARGS…`);
  // A secured lab's CA, certificate and login come as SLUICE_ETCD_* (see etcdToolCommand).
  const { store: storeUrl, etcd } = loadStoreSettings({ store: url });
  const store = openStore(storeUrl, etcd);
  try {
    await fn(new Registry(store), args);
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`etcd-tool: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
