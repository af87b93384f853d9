/**
 * The agent's in-memory copy of the cluster, fed by one list and then one
 * watch over the whole /sluice/v1/ prefix. Pure: it only applies key/value
 * events and answers questions; whoever owns it decides when to act.
 */
import type { BlockRecord, EndpointRecord, NetworkRecord, NodeRecord } from '../model';
import { type Policy, parsePolicies } from '../policy/policy';
import { errorMessage } from '../errors';
import { ROOT, leaf } from '../store/keys';
import type { KeyValue, WatchEvent } from '../store/store';

export class ClusterView {
  readonly networks = new Map<string, NetworkRecord>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly alive = new Set<string>();
  /** Keyed by "<net>/<block>". */
  readonly blocks = new Map<string, BlockRecord>();
  /** Keyed by "<node>/<endpoint id>". */
  readonly endpoints = new Map<string, EndpointRecord>();
  /** Keyed by "<node>/<docker network id>" → network key. */
  readonly dockerNets = new Map<string, string>();
  readonly policies = new Map<string, Policy>();

  /** Replaces everything with a fresh list (startup, or after a broken watch). */
  reset(kvs: KeyValue[]): void {
    for (const map of [this.networks, this.nodes, this.blocks, this.endpoints, this.dockerNets, this.policies]) map.clear();
    this.alive.clear();
    for (const kv of kvs) this.put(kv.key, kv.value);
  }

  apply(events: WatchEvent[]): void {
    for (const event of events) {
      if (event.type === 'put') this.put(event.kv.key, event.kv.value);
      else this.remove(event.key);
    }
  }

  private put(key: string, value: string): void {
    const [kind, rest] = split(key);
    switch (kind) {
      case 'networks':
        this.networks.set(rest, JSON.parse(value) as NetworkRecord);
        break;
      case 'nodes':
        this.nodes.set(rest, JSON.parse(value) as NodeRecord);
        break;
      case 'alive':
        this.alive.add(rest);
        break;
      case 'blocks':
        this.blocks.set(rest, JSON.parse(value) as BlockRecord);
        break;
      case 'endpoints':
        this.endpoints.set(rest, JSON.parse(value) as EndpointRecord);
        break;
      case 'dockernets':
        this.dockerNets.set(rest, value);
        break;
      case 'policies':
        try {
          const [policy] = parsePolicies(value);
          if (policy) this.policies.set(rest, policy);
        } catch (err) {
          // Only `sluice policy apply` writes here, after validation; anything else is not enforced.
          console.error(`sluice agent: ignoring invalid policy ${rest}: ${errorMessage(err)}`);
          this.policies.delete(rest);
        }
        break;
      default: // addresses and anything newer than this agent: not needed here
    }
  }

  private remove(key: string): void {
    const [kind, rest] = split(key);
    const maps: Record<string, Map<string, unknown> | Set<string>> = {
      networks: this.networks,
      nodes: this.nodes,
      alive: this.alive,
      blocks: this.blocks,
      endpoints: this.endpoints,
      dockernets: this.dockerNets,
      policies: this.policies,
    };
    maps[kind]?.delete(rest);
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

function split(key: string): [string, string] {
  const path = key.startsWith(ROOT) ? key.slice(ROOT.length) : key;
  const slash = path.indexOf('/');
  return slash < 0 ? [path, ''] : [path.slice(0, slash), path.slice(slash + 1)];
}
