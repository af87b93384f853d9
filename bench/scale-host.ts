// Simulated hosts of the scale scenario (bench/scenarios/scale.ts), one process of them:
//
//   node scale-host.js watchers ETCD COUNT
//       COUNT hosts that only watch: each its own etcd client, connection and watch of the whole
//       /sluice/v1/ prefix, as an agent's, noting when each endpoint event arrives
//   node scale-host.js agent ETCD INDEX
//       host INDEX as a full agent: the real Agent on a real EtcdStore, its containers in a
//       FakeDocker, on a dataplane that keeps only the last state; an endpoint event counts as
//       held once a firewall the agent applies was compiled from a view that has it
//
// Driven by one line per command on stdin, each answered by one JSON line:
//   start  → {startMs}: watchers connected / agent started (list + first apply)
//   mark   → {}: notes the time and this process's CPU
//   report → {marks, held, applies, rssMb}: the marks, held times and firewall applies since the
//            last report, which it forgets
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import { Agent } from '../src/agent/agent';
import { loadAgentConfig } from '../src/config';
import type { Dataplane, EndpointLink, RuleCounter, VxlanDevice, WireguardSettings } from '../src/dataplane/dataplane';
import type { FirewallChange, FirewallState } from '../src/firewall/state';
import type { WireguardImplementation } from '../src/model';
import type { BlockRoute } from '../src/routing/routes';
import { vxlanMac } from '../src/firewall/names';
import { Ipam } from '../src/ipam/ipam-service';
import { ROOT, keys } from '../src/store/keys';
import { EtcdStore } from '../src/store/etcd-store/adapter';
import { Registry } from '../src/store/registry';
import type { KeyValue, Lease, ListResult, Store, Unchanged, Watch, WatchEvent, WatchHandlers } from '../src/store/store';
import { BIG_NET, bigEndpoint, nodeIp, nodeName } from '../test/helpers/big-cluster';
import { FakeDocker } from '../test/helpers/fake-docker';
import { eventId, type Mark } from './held';
import { nowMs } from './proc';

const DOCKER_NET = 'd'.repeat(64);
const PER_NODE = 20;
const NICE = 10;
/** Watchers connecting at once: a thousand grpc handshakes together only make etcd time some out. */
const CONNECT_BATCH = 50;

/** Event ID → when this process's hosts held it, one time per host. */
const held = new Map<string, number[]>();
let marks: Mark[] = [];
/** Firewall applies of the agent. */
let applies = 0;

function hold(id: string, at: number): void {
  const times = held.get(id);
  if (times) times.push(at);
  else held.set(id, [at]);
}

function isEndpoint(key: string): boolean {
  return key.startsWith(keys.allEndpoints);
}

function rssMb(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Starts the hosts; returns how long that took. */
type Hosts = () => Promise<number>;

function watchers(etcd: string, count: number): Hosts {
  return async () => {
    const started = nowMs();
    for (let at = 0; at < count; at += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - at) }, async () => {
        // Its own subchannel pool: its own TCP connection, as an agent on its own host has.
        const client = new Etcd3({ hosts: `http://${etcd}`, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } });
        const watcher = await client.watch().prefix(ROOT).create();
        watcher.on('data', (res) => {
          const now = nowMs();
          for (const event of res.events) {
            const key = event.kv.key.toString();
            if (isEndpoint(key)) hold(eventId(event.type === 'Put' ? 'put' : 'delete', key), now);
          }
        });
      });
      await Promise.all(batch);
    }
    return nowMs() - started;
  };
}

/** The store, noting when each endpoint event reaches the agent's watch (and so its view). */
class NotingStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly onEndpointEvents: (ids: string[], at: number) => void,
  ) {}

  get description(): string {
    return this.inner.description;
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.inner.get(key);
  }

  list(prefix: string): Promise<ListResult> {
    return this.inner.list(prefix);
  }

  create(key: string, value: string, lease?: Lease): Promise<number | undefined> {
    return this.inner.create(key, value, lease);
  }

  compareAndSwap(key: string, value: string, expectedModRevision: number, lease?: Lease): Promise<boolean> {
    return this.inner.compareAndSwap(key, value, expectedModRevision, lease);
  }

  put(key: string, value: string, lease?: Lease): Promise<void> {
    return this.inner.put(key, value, lease);
  }

  putIfUnchanged(expect: readonly [Unchanged, ...Unchanged[]], puts: readonly { key: string; value: string }[], deletes?: readonly string[]): Promise<boolean> {
    return this.inner.putIfUnchanged(expect, puts, deletes);
  }

  delete(key: string, expectedModRevision?: number): Promise<boolean> {
    return this.inner.delete(key, expectedModRevision);
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
    return this.inner.watch(prefix, fromRevision, {
      onEvents: (events: WatchEvent[], revision: number) => {
        const ids = events.flatMap((e) => {
          const key = e.type === 'put' ? e.kv.key : e.key;
          return isEndpoint(key) ? [eventId(e.type, key)] : [];
        });
        this.onEndpointEvents(ids, nowMs());
        handlers.onEvents(events, revision);
      },
      onReset: (reason) => handlers.onReset(reason),
    });
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.inner.grantLease(ttlSeconds);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A dataplane that accepts everything and keeps only the last state, as the kernel would hold it:
 * the figures are the agent's own work, with no history piling up (RecordingDataplane copies
 * every call) and no iptables-restore.
 */
class LastStateDataplane implements Dataplane {
  gateways: string[] = [];
  routes: BlockRoute[] = [];
  firewall: FirewallState | undefined;
  lastChange: FirewallChange | undefined;

  constructor(private readonly onFirewall: () => void) {}

  init(): Promise<void> {
    return Promise.resolve();
  }
  addEndpoint(_link: EndpointLink): Promise<void> {
    return Promise.resolve();
  }
  removeEndpoint(_hostIfname: string): Promise<void> {
    return Promise.resolve();
  }
  listEndpoints(): Promise<string[]> {
    return Promise.resolve([]);
  }
  syncGateways(gateways: string[]): Promise<void> {
    this.gateways = gateways;
    return Promise.resolve();
  }
  ensureVxlan(device: VxlanDevice): Promise<{ mac: string }> {
    return Promise.resolve({ mac: vxlanMac(device.vni, device.localIp) });
  }
  syncRoutes(routes: BlockRoute[]): Promise<void> {
    this.routes = routes;
    return Promise.resolve();
  }
  applyFirewall(state: FirewallState): Promise<void> {
    this.firewall = state;
    this.onFirewall();
    // The real one waits for iptables-restore: watch events that come meanwhile fold into the
    // next apply. Resolving at once would compile once per event, never letting them in between.
    return new Promise((resolve) => setImmediate(resolve));
  }
  applyFirewallChange(change: FirewallChange): Promise<void> {
    this.lastChange = change;
    this.onFirewall();
    // An ipset restore, like the real one: events meanwhile fold into the next change.
    return new Promise((resolve) => setImmediate(resolve));
  }
  verifyFirewall(): Promise<string[]> {
    return Promise.resolve([]);
  }
  ruleCounters(): Promise<RuleCounter[]> {
    return Promise.resolve([]);
  }
  isOnLink(_ip: string): Promise<boolean> {
    return Promise.resolve(false);
  }
  mtuTowards(_ip: string): Promise<number> {
    return Promise.resolve(1500);
  }
  // The simulated hosts run --encryption none: these are never asked for.
  ensureWireguard(_mtu: number): Promise<WireguardImplementation> {
    return Promise.reject(new Error('the scale bench runs without encryption'));
  }
  syncWireguard(_settings: WireguardSettings): Promise<void> {
    return Promise.reject(new Error('the scale bench runs without encryption'));
  }
  removeWireguard(): Promise<void> {
    return Promise.resolve();
  }
}

function agent(etcd: string, index: number): Hosts {
  return async () => {
    // Below etcd and the watchers: agents that saturate the cores (a compile per change) slow
    // their own applies, not etcd's fan-out or the watches' delivery.
    setPriority(NICE);
    const node = nodeName(index);
    /** Endpoint events in the agent's view that no applied firewall has included yet. */
    let pending: string[] = [];
    // The firewall is compiled from the view just before applyFirewall: all pending events are in it.
    const dataplane = new LastStateDataplane(() => {
      applies++;
      const now = nowMs();
      for (const id of pending) hold(id, now);
      pending = [];
    });
    const store = new NotingStore(new EtcdStore({ endpoints: [etcd] }), (ids) => pending.push(...ids));
    const registry = new Registry(store);
    const docker = new FakeDocker();
    docker.addNetwork(DOCKER_NET, BIG_NET.name!, BIG_NET.subnet);
    for (let slot = 0; slot < PER_NODE; slot++) {
      const endpoint = bigEndpoint(index * PER_NODE + slot, index, slot);
      docker.run(DOCKER_NET, endpoint.id, { containerId: endpoint.containerId!, containerName: endpoint.containerName!, labels: endpoint.labels! });
    }
    await registry.putDockerNet(node, DOCKER_NET, BIG_NET.key);
    const config = loadAgentConfig({ node, 'node-ip': nodeIp(index), backend: 'vxlan', 'resync-interval': '3600', store: `etcd://${etcd}` }, {});
    const ipam = new Ipam(registry, { node, defaultSupernet: config.defaultSupernet, defaultSubnetPrefix: config.defaultSubnetPrefix, defaultBlockSize: config.blockSize });
    const started = nowMs();
    await new Agent(config, registry, dataplane, docker, ipam, { reconcileConfirmMs: 0 }).start();
    return nowMs() - started;
  };
}

function serve(start: Hosts): void {
  let queue = Promise.resolve();
  createInterface({ input: process.stdin }).on('line', (line) => {
    queue = queue.then(async () => {
      const reply = await answer(line.trim(), start);
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    });
  });
}

async function answer(command: string, start: Hosts): Promise<object> {
  switch (command) {
    case 'start':
      return { startMs: await start() };
    case 'mark':
      marks.push({ at: nowMs(), cpuMs: cpuMs() });
      return {};
    case 'report': {
      const reply = { marks, held: [...held], applies, rssMb: rssMb() };
      marks = [];
      held.clear();
      applies = 0;
      return reply;
    }
    default:
      return { error: `unknown command ${command}` };
  }
}

const [mode, etcd, ...args] = process.argv.slice(2);
if (mode === 'watchers' && etcd && args.length === 1) serve(watchers(etcd, Number(args[0])));
else if (mode === 'agent' && etcd && args.length === 1) serve(agent(etcd, Number(args[0])));
else {
  process.stderr.write('usage: scale-host watchers ETCD COUNT | agent ETCD INDEX\n');
  process.exit(2);
}
