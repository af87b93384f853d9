// A thousand hosts, seen from one agent (issue 11): its start (list + first apply) with 20,000
// endpoints in a real etcd, what other hosts' liveness renewals cost it, and the paged list of
// 50,000 endpoints (~22 MB, five times grpc's 4 MiB reply limit). No lab: the agent runs
// in-process on the recording dataplane, so the figures are etcd, decoding and compiling.
import { Agent } from '../../src/agent/agent';
import { loadAgentConfig } from '../../src/config';
import { RecordingDataplane } from '../../src/dataplane/fake/recording-dataplane';
import { Ipam } from '../../src/ipam/ipam-service';
import type { EndpointRecord } from '../../src/model';
import { parsePolicies } from '../../src/policy-document/policy';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { ROOT, keys } from '../../src/store/keys';
import { Registry } from '../../src/store/registry';
import { BIG_NET, bigCluster, nodeName, writeAll } from '../../test/helpers/big-cluster';
import { startEtcd } from '../../test/helpers/etcd';
import { FakeDocker } from '../../test/helpers/fake-docker';
import { nowMs, sleep } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { median } from '../stats';

const START_ENDPOINTS = 20_000;
const LIST_ENDPOINTS = 50_000;
const LIST_ROUNDS = 5;
/** Liveness renewals of other hosts, each a new node record (lastSeen) and its alive key put again. */
const RENEWALS = 200;
const DOCKER_NET = 'd'.repeat(64);
const POLICY = parsePolicies("kind: NetworkPolicy\nname: web-from-client\nselector: role == 'web'\ningress:\n  - action: allow\n    from: role == 'client'\n")[0]!;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = nowMs();
  await work();
  return nowMs() - start;
}

export const largeCluster: Scenario = {
  name: 'large-cluster',
  labs: [],
  async run(ctx) {
    const etcd = await startEtcd();
    const store = new EtcdStore({ endpoints: [etcd.endpoint] });
    try {
      ctx.log(`writing ${START_ENDPOINTS} endpoints`);
      const cluster = bigCluster(START_ENDPOINTS);
      await writeAll(etcd.endpoint, cluster);

      // The first host, its 20 containers running in (fake) Docker, and a policy that selects among all 20,000.
      const node = nodeName(0);
      const docker = new FakeDocker();
      docker.addNetwork(DOCKER_NET, BIG_NET.name!, BIG_NET.subnet);
      for (const { value } of cluster.filter((p) => p.key.startsWith(keys.endpoints(node)))) {
        const endpoint = JSON.parse(value) as EndpointRecord;
        docker.run(DOCKER_NET, endpoint.id, { containerId: endpoint.containerId!, containerName: endpoint.containerName!, labels: endpoint.labels! });
      }
      const registry = new Registry(store);
      await registry.putDockerNet(node, DOCKER_NET, BIG_NET.key);
      await registry.putPolicy(POLICY);
      const config = loadAgentConfig({ node, 'node-ip': '192.168.0.10', backend: 'vxlan', 'resync-interval': '3600', store: `etcd://${etcd.endpoint}` }, {});
      const dataplane = new RecordingDataplane({ onLink: [] });
      const ipam = new Ipam(registry, { node, defaultSupernet: config.defaultSupernet, defaultSubnetPrefix: config.defaultSubnetPrefix, defaultBlockSize: config.blockSize });
      const agent = new Agent(config, registry, dataplane, docker, ipam, { reconcileConfirmMs: 0 });
      const startMs = await timed(() => agent.start());
      try {
        ctx.add(figure('large-cluster', `agent start (list + first apply), ${START_ENDPOINTS} endpoints`, startMs, 'ms', { op: '<=', limit: 10_000 }));
        ctx.add(figure('large-cluster', `one apply (compile, recording dataplane), ${START_ENDPOINTS} endpoints`, median(await rounds(3, () => agent.converge())), 'ms'));

        const applies = () => dataplane.calls.filter((c) => c.method === 'applyFirewall').length;
        const before = applies();
        const records = new Map(cluster.map((p) => [p.key, p.value]));
        for (let i = 1; i <= RENEWALS; i++) {
          const name = nodeName(i);
          const record = JSON.parse(records.get(keys.node(name))!) as Record<string, unknown>;
          await store.put(keys.node(name), JSON.stringify({ ...record, lastSeen: new Date().toISOString() }));
          await store.put(keys.aliveNode(name), JSON.stringify({ since: new Date().toISOString() }));
        }
        await sleep(1000);
        ctx.add(figure('large-cluster', `applies caused by ${RENEWALS} liveness renewals`, applies() - before, 'count', { op: '<=', limit: 0 }));
      } finally {
        await agent.stop();
      }

      ctx.log(`writing ${LIST_ENDPOINTS} endpoints`);
      await writeAll(etcd.endpoint, bigCluster(LIST_ENDPOINTS));
      const times = await rounds(LIST_ROUNDS, () => store.list(ROOT));
      ctx.add(figure('large-cluster', `list of ${ROOT}, ${LIST_ENDPOINTS} endpoints, median`, median(times), 'ms', { op: '<=', limit: 3000 }));
      ctx.add(figure('large-cluster', `list of ${ROOT}, ${LIST_ENDPOINTS} endpoints, max of ${LIST_ROUNDS}`, Math.max(...times), 'ms'));
    } finally {
      await store.close();
      await etcd.stop();
    }
  },
};

async function rounds(count: number, work: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await timed(work));
  return times;
}
