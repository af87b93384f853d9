/**
 * Reconciliation against Docker, the truth about which containers run here.
 * Endpoints, veths, addresses and Docker network records with no container or
 * network behind them are leftovers of a crash or of a dockerd restart that
 * never sent Leave/DeleteEndpoint: they are removed. Nothing that Docker still
 * lists is touched, and since a container that is starting right now is not
 * listed yet either, only what is left over on two looks `confirmMs` apart,
 * unchanged in between, is removed.
 */
import { endpointIfnames, isSluiceHostIfname } from '../firewall/names';
import type { Dataplane } from '../dataplane/dataplane';
import { InvalidRecordError, NotFoundError } from '../errors';
import type { Ipam } from '../ipam/ipam-service';
import type { DockerHost } from '../labels/docker';
import { keys, leaf } from '../store/keys';
import { readEndpoint, tryRead } from '../store/records';
import type { Registry } from '../store/registry';
import type { KeyValue } from '../store/store';
import type { EndpointRecord } from '../model';
import { sleep, type Clock } from '../util/clock';
import { Coalescer } from '../util/coalescer';
import type { ClusterView } from './view';

interface Leftover {
  /** Compared between the two looks: a leftover that changed in between is not removed. */
  version: string;
  remove(): Promise<void>;
}

export interface ReconcileDeps {
  node: string;
  registry: Registry;
  dataplane: Dataplane;
  docker: DockerHost;
  ipam: Ipam;
  view: ClusterView;
  /** Endpoints between CreateEndpoint and Join, by ID: recorded only by their Join, their veths made already. */
  creating: ReadonlyMap<string, EndpointRecord>;
  clock: Clock;
  /** How long a leftover must stay one before it is removed. */
  confirmMs: number;
  /** After every pass: the Docker networks of this host may have changed. */
  networksChanged(): Promise<void>;
}

export class Reconciler {
  // At start, after a dockerd restart and on a timer: one pass at a time.
  private readonly passes = new Coalescer(() => this.reconcileOnce());

  constructor(private readonly deps: ReconcileDeps) {}

  /** Resolves once a pass that started after this call has finished. */
  run(): Promise<void> {
    return this.passes.run();
  }

  private async reconcileOnce(): Promise<void> {
    const first = await this.findLeftovers();
    if (first.size > 0) {
      await sleep(this.deps.clock, this.deps.confirmMs);
      const second = await this.findLeftovers();
      for (const [key, leftover] of second) {
        if (first.get(key)?.version !== leftover.version) continue;
        console.error(`sluice agent: removing ${key}: Docker has no container for it`);
        await leftover.remove();
      }
    }
    await this.deps.networksChanged();
  }

  /** What this node holds that Docker does not know, keyed by what it is. */
  private async findLeftovers(): Promise<Map<string, Leftover>> {
    const { node, registry, dataplane, docker, ipam, view } = this.deps;
    const dockerNetworks = await docker.sluiceNetworks();
    const liveEndpoints = new Set(dockerNetworks.flatMap((n) => n.endpoints.map((e) => e.endpointId)));
    const liveNetworks = new Set(dockerNetworks.map((n) => n.id));
    const found = new Map<string, Leftover>();

    for (const kv of (await registry.store.list(keys.dockerNets(node))).kvs) {
      const dockerNetworkId = leaf(kv.key);
      if (liveNetworks.has(dockerNetworkId)) continue;
      found.set(`docker network ${dockerNetworkId}`, {
        version: String(kv.modRevision),
        remove: async () => {
          await registry.deleteDockerNet(node, dockerNetworkId);
          await ipam.releaseBlocks(kv.value);
        },
      });
    }
    const endpointKvs = (await registry.store.list(keys.endpoints(node))).kvs;
    const endpoints = endpointKvs.flatMap((kv) => {
      const record = tryRead(kv, readEndpoint);
      // Invalid: the view logged it; nothing acts on what it cannot read.
      return record instanceof InvalidRecordError ? [] : [{ record, version: String(kv.modRevision) }];
    });
    for (const { record, version } of endpoints) {
      if (liveEndpoints.has(record.id)) continue;
      found.set(`endpoint ${record.id}`, {
        version,
        remove: async () => {
          await dataplane.removeEndpoint(record.hostIfname);
          await registry.deleteEndpoint(node, record.id);
          await ipam.releaseAddress(record.network, record.address).catch((err: unknown) => {
            // The network is gone, and its addresses with it.
            if (!(err instanceof NotFoundError)) throw err;
          });
          view.endpoints.delete(`${node}/${record.id}`);
        },
      });
    }
    const veths = recordedVeths(endpointKvs);
    for (const endpoint of this.deps.creating.values()) veths.add(endpoint.hostIfname);
    for (const ifname of await dataplane.listEndpoints()) {
      if (!isSluiceHostIfname(ifname) || veths.has(ifname)) continue;
      found.set(`veth ${ifname}`, { version: '', remove: () => dataplane.removeEndpoint(ifname) });
    }
    for (const network of await registry.listNetworks()) {
      for (const { record, modRevision } of await registry.listAddresses(network.key)) {
        if (record.node !== node || record.kind !== 'endpoint') continue;
        if (record.endpointId !== undefined && liveEndpoints.has(record.endpointId)) continue;
        found.set(`address ${record.address} of ${network.subnet}`, {
          version: String(modRevision),
          remove: () => ipam.releaseAddress(network.key, record.address),
        });
      }
    }
    return found;
  }
}

/** The veths of endpoint records. An invalid record keeps its veth: nothing acts on what it cannot read. */
export function recordedVeths(endpointKvs: KeyValue[]): Set<string> {
  return new Set(endpointKvs.flatMap((kv) => vethOf(leaf(kv.key))));
}

/** The veth of an endpoint ID, if the ID can name one. */
function vethOf(endpointId: string): string[] {
  try {
    return [endpointIfnames(endpointId).hostIfname];
  } catch {
    // Not an ID Docker makes (garbage in the store): it names no veth.
    return [];
  }
}
