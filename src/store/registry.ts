/**
 * Typed access to Sluice's records in the store. Values are JSON; the key
 * layout lives in keys.ts. Callers get records, never raw key/value pairs.
 *
 * Every record is read through records.ts. A get of an invalid record throws
 * InvalidRecordError; a list skips invalid records (invalidRecords() names
 * them), except that a block or address claim with an unreadable value is
 * listed as held by UNKNOWN_HOLDER: it stays taken, so IPAM never hands it out.
 *
 * One file: the one typed door to every record kind, so each kind's reads sit
 * beside its writes, and the transactions that span kinds (a network and its
 * gateway claim, an endpoint and its address) are in one place.
 */
import { InvalidRecordError } from '../errors';
import type { AddressRecord, BlockRecord, EndpointRecord, NetworkRecord, NodeRecord } from '../model';
import { type Policy, policyToYaml } from '../policy-document/policy';
import { ROOT, keys, leaf } from './keys';
import {
  type DockerNetRecord,
  readAddress,
  readAddressClaim,
  readAlive,
  readBlock,
  readBlockClaim,
  readDockerNet,
  readEndpoint,
  readNetwork,
  readNode,
  readPolicy,
  readRecord,
  tryRead,
} from './records';
import type { KeyValue, Lease, Store, Unchanged } from './store';

export interface Versioned<T> {
  record: T;
  modRevision: number;
}

/** The records of `kvs` that `read` accepts; the others are left out. */
function valid<T>(kvs: KeyValue[], read: (kv: KeyValue) => T): T[] {
  return kvs.flatMap((kv) => {
    const result = tryRead(kv, read);
    return result instanceof InvalidRecordError ? [] : [result];
  });
}

/** An address claim as it is to be written, if still at `modRevision`. */
export interface AddressClaimUpdate {
  block: string;
  address: AddressRecord;
  modRevision: number;
}

export class Registry {
  constructor(readonly store: Store) {}

  // Networks

  async getNetwork(net: string): Promise<Versioned<NetworkRecord> | undefined> {
    const kv = await this.store.get(keys.network(net));
    return kv && { record: readNetwork(kv), modRevision: kv.modRevision };
  }

  async listNetworks(): Promise<NetworkRecord[]> {
    const { kvs } = await this.store.list(keys.networks);
    return valid(kvs, readNetwork);
  }

  /** The networks, and the pool guard's revision read before them: what createNetwork checks against. */
  async listNetworksForCreate(): Promise<{ networks: NetworkRecord[]; guard: number }> {
    const guard = (await this.store.get(keys.poolGuard))?.modRevision ?? 0;
    return { networks: await this.listNetworks(), guard };
  }

  /**
   * Creates the network with its gateway claim in one transaction, only if no
   * network was created since the pool guard was at `guard`: the networks the
   * caller listed then are still all there are. False if one was.
   */
  createNetwork(network: NetworkRecord, guard: number, gateway: GatewayClaim): Promise<boolean> {
    const key = keys.network(network.key);
    return this.store.putIfUnchanged(
      [
        { key: keys.poolGuard, modRevision: guard },
        { key, modRevision: 0 },
      ],
      [...networkPuts(network, gateway), { key: keys.poolGuard, value: network.key }],
    );
  }

  /** Replaces the network and claims its (new) gateway in one transaction, only if the network is unchanged since `modRevision`. */
  updateNetwork(network: NetworkRecord, modRevision: number, gateway: GatewayClaim): Promise<boolean> {
    return this.store.putIfUnchanged([{ key: keys.network(network.key), modRevision }], networkPuts(network, gateway));
  }

  deleteNetwork(net: string): Promise<boolean> {
    return this.store.delete(keys.network(net));
  }

  // Blocks

  async listBlocks(net: string): Promise<BlockRecord[]> {
    const { kvs } = await this.store.list(keys.blocks(net));
    return valid(kvs, readBlockClaim);
  }

  async listAllBlocks(): Promise<BlockRecord[]> {
    const { kvs } = await this.store.list(keys.allBlocks);
    return valid(kvs, readBlockClaim);
  }

  async getBlock(net: string, block: string): Promise<BlockRecord | undefined> {
    const kv = await this.store.get(keys.block(net, block));
    return kv && readBlock(kv);
  }

  async claimBlock(block: BlockRecord): Promise<boolean> {
    return (await this.store.create(keys.block(block.network, block.block), JSON.stringify(block))) !== undefined;
  }

  releaseBlock(net: string, block: string): Promise<boolean> {
    return this.store.delete(keys.block(net, block));
  }

  // Addresses

  async listAddresses(net: string, block?: string): Promise<Versioned<AddressRecord>[]> {
    const prefix = block === undefined ? keys.addresses(net) : keys.blockAddresses(net, block);
    const { kvs } = await this.store.list(prefix);
    return valid(kvs, (kv) => ({ record: readAddressClaim(kv), modRevision: kv.modRevision }));
  }

  async getAddress(net: string, block: string, ip: string): Promise<Versioned<AddressRecord> | undefined> {
    const kv = await this.store.get(keys.address(net, block, ip));
    return kv && { record: readAddress(kv), modRevision: kv.modRevision };
  }

  /** The claim as written, if this call made it. */
  async claimAddress(block: string, address: AddressRecord): Promise<Versioned<AddressRecord> | undefined> {
    const modRevision = await this.store.create(keys.address(address.network, block, address.address), JSON.stringify(address));
    return modRevision === undefined ? undefined : { record: address, modRevision };
  }

  /** Deletes the claim only if it is unchanged since `held` was read and the endpoint it names, if any, is gone. */
  releaseUnheldAddress(block: string, held: Versioned<AddressRecord>): Promise<boolean> {
    const { network, address, node, endpointId } = held.record;
    const key = keys.address(network, block, address);
    const holder: Unchanged[] = endpointId === undefined ? [] : [{ key: keys.endpoint(node, endpointId), modRevision: 0 }];
    return this.store.putIfUnchanged([{ key, modRevision: held.modRevision }, ...holder], [], [key]);
  }

  releaseAddress(net: string, block: string, ip: string, modRevision?: number): Promise<boolean> {
    return this.store.delete(keys.address(net, block, ip), modRevision);
  }

  // Endpoints

  async getEndpoint(node: string, id: string): Promise<Versioned<EndpointRecord> | undefined> {
    const kv = await this.store.get(keys.endpoint(node, id));
    return kv && { record: readEndpoint(kv), modRevision: kv.modRevision };
  }

  async listEndpoints(node?: string): Promise<EndpointRecord[]> {
    const { kvs } = await this.store.list(node === undefined ? keys.allEndpoints : keys.endpoints(node));
    return valid(kvs, readEndpoint);
  }

  putEndpoint(endpoint: EndpointRecord): Promise<void> {
    return this.store.put(keys.endpoint(endpoint.node, endpoint.id), JSON.stringify(endpoint));
  }

  /** The endpoint, and on each of its address claims (IPv4, and IPv6 on a dual-stack network) its ID: one transaction, refused if a claim changed. */
  putEndpointOnAddresses(endpoint: EndpointRecord, claims: readonly [AddressClaimUpdate, ...AddressClaimUpdate[]]): Promise<boolean> {
    const key = (c: AddressClaimUpdate): string => keys.address(c.address.network, c.block, c.address.address);
    const [first, ...more] = claims;
    return this.store.putIfUnchanged(
      [{ key: key(first), modRevision: first.modRevision }, ...more.map((c) => ({ key: key(c), modRevision: c.modRevision }))],
      [...claims.map((c) => ({ key: key(c), value: JSON.stringify(c.address) })), { key: keys.endpoint(endpoint.node, endpoint.id), value: JSON.stringify(endpoint) }],
    );
  }

  deleteEndpoint(node: string, id: string): Promise<boolean> {
    return this.store.delete(keys.endpoint(node, id));
  }

  // Docker network IDs of one node → network keys

  async getDockerNet(node: string, dockerNetworkId: string): Promise<string | undefined> {
    const kv = await this.store.get(keys.dockerNet(node, dockerNetworkId));
    return kv && readDockerNet(kv).network;
  }

  /** Every node's Docker networks: [node, docker network id, network key]. */
  async listDockerNets(node?: string): Promise<DockerNetRecord[]> {
    const { kvs } = await this.store.list(node === undefined ? keys.allDockerNets : keys.dockerNets(node));
    return valid(kvs, readDockerNet);
  }

  putDockerNet(node: string, dockerNetworkId: string, net: string): Promise<void> {
    return this.store.put(keys.dockerNet(node, dockerNetworkId), net);
  }

  deleteDockerNet(node: string, dockerNetworkId: string): Promise<boolean> {
    return this.store.delete(keys.dockerNet(node, dockerNetworkId));
  }

  // Nodes

  async listNodes(): Promise<NodeRecord[]> {
    const { kvs } = await this.store.list(keys.nodes);
    return valid(kvs, readNode);
  }

  putNode(node: NodeRecord): Promise<void> {
    return this.store.put(keys.node(node.name), JSON.stringify(node));
  }

  async getNode(name: string): Promise<Versioned<NodeRecord> | undefined> {
    const kv = await this.store.get(keys.node(name));
    return kv && { record: readNode(kv), modRevision: kv.modRevision };
  }

  /** Writes the node only if its record is unchanged since `modRevision` (0: absent), so no write erases a reclaim unseen. */
  replaceNode(node: NodeRecord, modRevision: number): Promise<boolean> {
    return this.store.compareAndSwap(keys.node(node.name), JSON.stringify(node), modRevision);
  }

  /** Writes `node` (marked reclaimed) only while it is dead and its record unchanged since `modRevision`. */
  markReclaimed(node: NodeRecord, modRevision: number): Promise<boolean> {
    return this.store.putIfUnchanged(whileDead(node.name, modRevision), [{ key: keys.node(node.name), value: JSON.stringify(node) }]);
  }

  /**
   * What a node holds, each key with its revision: per block of the node, the addresses it
   * holds there and their endpoints, then the block itself; apart, its endpoints with no
   * address record. Its Docker network IDs are not holdings: a node that comes back keeps
   * its networks.
   */
  async holdingsOf(name: string): Promise<NodeHoldings> {
    const [blockKvs, endpointKvs] = await Promise.all([this.store.list(keys.allBlocks), this.store.list(keys.endpoints(name))]);
    const endpoints = new Map(endpointKvs.kvs.map((kv) => [leaf(kv.key), held(kv)]));
    const blocks: NodeHoldings['blocks'] = [];
    for (const kv of blockKvs.kvs) {
      const block = tryRead(kv, readBlockClaim);
      if (block instanceof InvalidRecordError || block.node !== name) continue;
      const addresses = (await this.listAddresses(block.network, block.block)).filter((a) => a.record.node === name);
      const items = addresses.flatMap(({ record, modRevision }) => {
        const endpoint = record.endpointId === undefined ? undefined : endpoints.get(record.endpointId);
        if (record.endpointId !== undefined) endpoints.delete(record.endpointId);
        return [{ key: keys.address(block.network, block.block, record.address), modRevision }, ...(endpoint ? [endpoint] : [])];
      });
      blocks.push({ block, addresses: addresses.length, held: [...items, held(kv)] });
    }
    return { blocks, rest: [...endpoints.values()] };
  }

  /** Deletes `items` in one transaction, only while the node is dead, its record still at `nodeRevision` and every item unchanged. */
  releaseWhileDead(name: string, nodeRevision: number, items: readonly Held[]): Promise<boolean> {
    return this.store.putIfUnchanged([...whileDead(name, nodeRevision), ...items], [], items.map((i) => i.key));
  }

  /** Removes a dead node's record and Docker network IDs, only while it is dead and the record unchanged since `modRevision`. */
  async deleteDeadNode(name: string, modRevision: number): Promise<boolean> {
    const { kvs } = await this.store.list(keys.dockerNets(name));
    return this.store.putIfUnchanged(whileDead(name, modRevision), [], [keys.node(name), ...kvs.map((kv) => kv.key)]);
  }

  deleteNode(name: string): Promise<boolean> {
    return this.store.delete(keys.node(name));
  }

  /** Liveness: the key lives as long as the agent keeps `lease` alive. */
  markAlive(name: string, lease: Lease): Promise<void> {
    return this.store.put(keys.aliveNode(name), JSON.stringify({ since: new Date().toISOString() }), lease);
  }

  async listAlive(): Promise<Set<string>> {
    const { kvs } = await this.store.list(keys.alive);
    return new Set(valid(kvs, readAlive));
  }

  // Policies

  // Policies are kept in their document form (YAML), read back through the same validating parser.

  async listPolicies(): Promise<Policy[]> {
    const { kvs } = await this.store.list(keys.policies);
    return valid(kvs, readPolicy);
  }

  putPolicy(policy: Policy): Promise<void> {
    return this.store.put(keys.policy(policy.name), policyToYaml(policy));
  }

  deletePolicy(name: string): Promise<boolean> {
    return this.store.delete(keys.policy(name));
  }

  // Validation

  /** Every key whose record is invalid, and why: what the lists above leave out. */
  async invalidRecords(): Promise<{ key: string; reason: string }[]> {
    const { kvs } = await this.store.list(ROOT);
    return kvs.flatMap((kv) => {
      const result = tryRead(kv, readRecord);
      return result instanceof InvalidRecordError ? [{ key: result.key, reason: result.reason }] : [];
    });
  }
}

/** One key a node holds, with the revision it had when listed: released only if still unchanged. */
export interface Held {
  key: string;
  modRevision: number;
}

export interface NodeHoldings {
  /** The node's blocks; `held` lists the block's address and endpoint keys, then the block's own key, last. */
  blocks: { block: BlockRecord; addresses: number; held: Held[] }[];
  /** Endpoints with no address record in the node's blocks. */
  rest: Held[];
}

function held(kv: KeyValue): Held {
  return { key: kv.key, modRevision: kv.modRevision };
}

/** The condition of every reclaim step: `alive/<node>` absent and the node record still at `modRevision`. */
function whileDead(name: string, modRevision: number): [Unchanged, ...Unchanged[]] {
  return [
    { key: keys.aliveNode(name), modRevision: 0 },
    { key: keys.node(name), modRevision },
  ];
}

/** The address record reserving a network's gateway, in the block it falls in. */
export interface GatewayClaim {
  block: string;
  address: AddressRecord;
}

function networkPuts(network: NetworkRecord, gateway: GatewayClaim): { key: string; value: string }[] {
  return [
    { key: keys.network(network.key), value: JSON.stringify(network) },
    { key: keys.address(network.key, gateway.block, gateway.address.address), value: JSON.stringify(gateway.address) },
  ];
}
