/**
 * The agent's in-memory copy of the cluster, fed by one list and then one
 * watch over the whole /sluice/v1/ prefix. Pure: it only applies key/value
 * events and answers questions; whoever owns it decides when to act. Every
 * value is read through store/records.ts: an invalid one is logged once, kept
 * in `invalid` and otherwise ignored, so no value can stop the agent.
 */
import { InvalidRecordError } from '../errors';
import type { BlockRecord, EndpointRecord, NetworkRecord, NodeRecord } from '../model';
import type { Policy } from '../policy-document/policy';
import { leaf, splitKey } from '../store/keys';
import { readRecord, tryRead, type DockerNetRecord } from '../store/records';
import type { KeyValue, WatchEvent } from '../store/store';

export interface ViewChanges {
  endpoints: ReadonlySet<string> | undefined;
  structure: boolean;
}

export class ClusterView {
  /** The networks, by their IPv4 pool (the Docker network); a dual-stack one names its IPv6 pool in settings.ipv6Subnet. */
  readonly networks = new Map<string, NetworkRecord>();
  /** IPv6 pools, by key ("fd00:96::-64"): their gateway and block size. */
  readonly ipv6Pools = new Map<string, NetworkRecord>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly alive = new Set<string>();
  /** Keyed by "<net>/<block>". */
  readonly blocks = new Map<string, BlockRecord>();
  /** Keyed by "<node>/<endpoint id>". */
  readonly endpoints = new Map<string, EndpointRecord>();
  /** Keyed by "<node>/<docker network id>" → network key. */
  readonly dockerNets = new Map<string, string>();
  readonly policies = new Map<string, Policy>();
  /** Keys whose record is invalid → why. They are in none of the maps above: nothing acts on them. */
  readonly invalid = new Map<string, string>();
  /** Endpoint keys put or removed since takeChanges(); undefined after a reset: any may have. */
  private endpointChanges: Set<string> | undefined;
  /** Whether anything else the host's state depends on changed since takeChanges(). */
  private structureChanged = true;
  /** The maps by the key kind they hold; `alive` as a map of presence. */
  private readonly byKind: Record<string, { get(key: string): unknown; delete(key: string): boolean }> = {
    // A network key with ':' is an IPv6 pool's.
    networks: {
      get: (key) => (key.includes(':') ? this.ipv6Pools : this.networks).get(key),
      delete: (key) => (key.includes(':') ? this.ipv6Pools : this.networks).delete(key),
    },
    nodes: this.nodes,
    alive: { get: (node) => (this.alive.has(node) ? true : undefined), delete: (node) => this.alive.delete(node) },
    blocks: this.blocks,
    endpoints: this.endpoints,
    dockernets: this.dockerNets,
    policies: this.policies,
  };

  /** Replaces everything with a fresh list (startup, or after a broken watch). */
  reset(kvs: KeyValue[]): void {
    const reported = new Map(this.invalid);
    for (const map of [this.networks, this.ipv6Pools, this.nodes, this.blocks, this.endpoints, this.dockerNets, this.policies, this.invalid]) map.clear();
    this.alive.clear();
    for (const kv of kvs) this.put(kv, reported.get(kv.key));
    this.endpointChanges = undefined;
    this.structureChanged = true;
  }

  /**
   * What changed since the last call, so that a container starting anywhere costs this host
   * only that endpoint: `endpoints` are the keys put or removed (undefined after a reset, when
   * every endpoint must be compared), `structure` whether networks, nodes, blocks, Docker
   * networks or policies did.
   */
  takeChanges(): ViewChanges {
    const changes = { endpoints: this.endpointChanges, structure: this.structureChanged };
    this.endpointChanges = new Set();
    this.structureChanged = false;
    return changes;
  }

  /**
   * True if the events changed anything the desired state depends on. Not so: keys the view
   * ignores (addresses, the pool guard), a value put again unchanged (liveness renewals), a node
   * record whose only change is its lastSeen (its agent says it is alive every minute).
   */
  apply(events: WatchEvent[]): boolean {
    let changed = false;
    for (const event of events) {
      const key = event.type === 'put' ? event.kv.key : event.key;
      const before = this.entry(key);
      if (event.type === 'put') this.put(event.kv, this.invalid.get(key));
      else this.remove(key);
      const differs = before !== this.entry(key);
      if (differs && splitKey(key)[0] !== 'endpoints') this.structureChanged = true;
      changed ||= differs;
    }
    return changed;
  }

  /** What `key` contributes to the view, as text to compare; undefined if nothing. */
  private entry(key: string): string | undefined {
    const [kind, rest] = splitKey(key);
    const entry = this.byKind[kind]?.get(rest);
    if (entry === undefined) return undefined;
    // What a node reports with its liveness every minute is for people (status), not for the kernel.
    if (kind === 'nodes') return JSON.stringify({ ...(entry as NodeRecord), lastSeen: undefined, lastApply: undefined, lastError: undefined });
    return JSON.stringify(entry);
  }

  /** `reported`: why the key was already invalid, so a resync does not log it again. */
  private put(kv: KeyValue, reported: string | undefined): void {
    // Whatever the key held before is superseded, even by a value that turns out invalid.
    this.remove(kv.key);
    const read = tryRead(kv, readRecord);
    if (read instanceof InvalidRecordError) {
      if (read.reason !== reported) console.error(`sluice agent: ignoring ${read.message}`);
      this.invalid.set(kv.key, read.reason);
      return;
    }
    const [, rest] = splitKey(kv.key);
    switch (read.kind) {
      case 'network':
        (rest.includes(':') ? this.ipv6Pools : this.networks).set(rest, read.record);
        break;
      case 'node':
        this.nodes.set(rest, read.record);
        break;
      case 'alive':
        this.alive.add(rest);
        break;
      case 'block':
        this.blocks.set(rest, read.record);
        break;
      case 'endpoint':
        this.endpoints.set(rest, read.record);
        this.endpointChanges?.add(rest);
        break;
      case 'dockernet':
        this.dockerNets.set(rest, read.record.network);
        break;
      case 'policy':
        this.policies.set(rest, read.record);
        break;
      default: // addresses and anything newer than this agent: not needed here
    }
  }

  private remove(key: string): void {
    const [kind, rest] = splitKey(key);
    this.invalid.delete(key);
    if (this.byKind[kind]?.delete(rest) && kind === 'endpoints') this.endpointChanges?.add(rest);
  }

  /** An endpoint as this host's driver just wrote it, ahead of the watch. */
  putEndpoint(endpoint: EndpointRecord, removed = false): void {
    const key = `${endpoint.node}/${endpoint.id}`;
    if (removed) this.endpoints.delete(key);
    else this.endpoints.set(key, endpoint);
    this.endpointChanges?.add(key);
  }

  /** `node`'s Docker networks as just read from the store, ahead of the watch. */
  putDockerNets(node: string, nets: readonly DockerNetRecord[]): void {
    for (const key of [...this.dockerNets.keys()]) if (key.startsWith(`${node}/`)) this.dockerNets.delete(key);
    for (const d of nets) this.dockerNets.set(`${d.node}/${d.dockerNetworkId}`, d.network);
    this.structureChanged = true;
  }

  /** Network keys that have a Docker network on `node`. */
  networksOn(node: string): Set<string> {
    const nets = new Set<string>();
    for (const [key, net] of this.dockerNets) if (key.startsWith(`${node}/`)) nets.add(net);
    return nets;
  }

  /** The Docker network ID of `net` on `node`, if the node has one. */
  dockerNetworkId(node: string, net: string): string | undefined {
    for (const [key, value] of this.dockerNets) if (value === net && key.startsWith(`${node}/`)) return leaf(key);
    return undefined;
  }

  endpointsOf(node: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.node === node);
  }
}
