/**
 * Docker's IPAM calls on top of the cluster store. A network is identified by
 * its subnet (PoolID = network key), so the same `--subnet` on every host is
 * one network. Each host claims blocks of the subnet and hands out addresses
 * from its own blocks; both claims are create-if-absent in the store, so no
 * address is ever held twice, whatever the hosts do concurrently.
 *
 * One file: the Ipam class and defineNetwork share the gateway claim and the
 * bounded retry over store races (RACE_RETRIES); the pure choosing of blocks
 * and addresses already lives apart (allocator.ts).
 */
import {
  BadRequestError,
  ConflictError,
  ExhaustedError,
  NotFoundError,
} from '../errors';
import type { AddressRecord, BlockRecord, NetworkRecord, NetworkSettings } from '../model';
import * as ip from '../net/ip';
import type {
  IpamService,
  RequestAddressRequest,
  RequestPoolRequest,
  RequestPoolResult,
} from '../protocol/services';
import { cidrKey } from '../store/keys';
import type { GatewayClaim, Registry, Versioned } from '../store/registry';
import { KeyedMutex } from '../util/keyed-mutex';
import { defaultGateway, freeAddresses, freeBlocks, isHostAddress, pickSubnet } from './allocator';

export const GATEWAY_REQUEST = 'com.docker.network.gateway';
export const BLOCK_SIZE_OPTION = 'block-size';
export const IPV6_BLOCK_SIZE_OPTION = 'block-size-v6';
/**
 * Blocks of an IPv6 pool: 64 addresses, as many as IPv4's default /26, so a
 * host claims blocks (and every host holds routes) at the same pace whatever
 * the family. A /64 holds 2^58 of them: exhaustion is not the constraint.
 */
export const DEFAULT_IPV6_BLOCK_SIZE = 122;

export interface IpamOptions {
  node: string;
  /** Where networks created without --subnet get theirs (IPv4). */
  defaultSupernet: ip.Cidr;
  /** Prefix length of subnets picked from the supernet. */
  defaultSubnetPrefix: number;
  /** Prefix length of the blocks a host claims. */
  defaultBlockSize: number;
}

/**
 * The networks and blocks the local agent's view holds, kept by its watch: what every container
 * start and removal would otherwise read from the store. Undefined for what it does not have
 * (yet); a block list it gives may lag a claim, which the claim, create-if-absent, then finds out.
 */
export interface KnownPools {
  knownPool(net: string): NetworkRecord | undefined;
  knownBlocks(net: string): BlockRecord[] | undefined;
}

/** The KnownPools of what is made after the IPAM: the agent, which is made with the IPAM it uses. */
export function knownLater(source: () => KnownPools): KnownPools {
  return { knownPool: (net) => source().knownPool(net), knownBlocks: (net) => source().knownBlocks(net) };
}

/** A network record for `subnet`, its gateway the first host address. */
export function newNetworkRecord(subnet: ip.Cidr, blockSize: number, extra: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    key: cidrKey(ip.formatCidr(subnet)),
    subnet: ip.formatCidr(subnet),
    blockSize: Math.max(blockSize, subnet.prefix),
    gateway: ip.formatIp(ip.at(subnet, defaultGateway(subnet))),
    ...extra,
  };
}

/** How many times a lost create race is retried with a fresh list before giving up. */
const RACE_RETRIES = 20;

/**
 * Creates the network `want` picks from the existing ones. The network and
 * its gateway claim (so no block hands the gateway to a container) are one
 * store transaction, refused if any other network was created since the
 * list: two overlapping subnets never both exist, whatever hosts race. A
 * lost race lists and picks again. The same subnet is the same network: the
 * existing one is returned with `created` false.
 */
export async function defineNetwork(
  registry: Registry,
  want: (existing: readonly NetworkRecord[]) => NetworkRecord,
): Promise<{ network: NetworkRecord; created: boolean }> {
  for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
    const { networks, guard } = await registry.listNetworksForCreate();
    const network = want(networks);
    const same = sameNetwork(networks, network);
    if (same) return { network: same, created: false };
    if (await registry.createNetwork(network, guard, gatewayClaim(network))) return { network, created: true };
  }
  throw new ConflictError('too many concurrent network creations: try again');
}

/** The existing network with `network`'s subnet, if any; a ConflictError if another one overlaps it. */
function sameNetwork(existing: readonly NetworkRecord[], network: NetworkRecord): NetworkRecord | undefined {
  const same = existing.find((n) => n.subnet === network.subnet);
  if (same) return same;
  const subnet = ip.parseCidr(network.subnet)!;
  const clash = existing.find((n) => ip.overlaps(ip.parseCidr(n.subnet)!, subnet));
  if (clash) {
    throw new ConflictError(
      `subnet ${network.subnet} overlaps sluice network ${clash.name ? `${clash.name} (${clash.subnet})` : clash.subnet}: pick a subnet outside it`,
    );
  }
  return undefined;
}

/** The block of `address`, an address of `network`'s (as read and checked from the store). */
function blockOfAddress(network: NetworkRecord, address: string): string {
  return ip.formatCidr(ip.blockOf(ip.parseIp(address)!, network.blockSize));
}

function gatewayBlock(network: NetworkRecord): string {
  return blockOfAddress(network, network.gateway);
}

/** The record that keeps the network's gateway from being handed to a container. */
function gatewayClaim(network: NetworkRecord): GatewayClaim {
  return { block: gatewayBlock(network), address: { network: network.key, address: network.gateway, node: '*', kind: 'gateway' } };
}

/**
 * Block size of a new network with `--ip-range`: small enough that the range
 * holds at least 4 blocks (down to 4 addresses), so more than one host can
 * take addresses from it.
 */
function rangedBlockSize(blockSize: number, range: ip.Cidr): number {
  return Math.max(blockSize, Math.min(ip.bits(range.family) - 2, range.prefix + 2));
}

/** What a family's pools accept: `--subnet` and block prefix lengths, and its block size option. */
const FAMILY = {
  4: { name: 'IPv4', example: '10.96.0.0/16', smallest: 30, blockOption: BLOCK_SIZE_OPTION, blocks: { min: 16, max: 30, example: 26 } },
  6: { name: 'IPv6', example: 'fd00:96::/64', smallest: 126, blockOption: IPV6_BLOCK_SIZE_OPTION, blocks: { min: 64, max: 126, example: 122 } },
} as const;

export class Ipam implements IpamService {
  private readonly lock = new KeyedMutex();
  /**
   * Pools of a `docker network create` in progress on this host (RequestPool
   * done, CreateNetwork not yet): a specific address Docker requests then is
   * an `--aux-address`, not a container's `--ip`.
   */
  private readonly creating = new Set<string>();
  /**
   * Per block this node allocated in (by "<net>/<block>"), the addresses held there as last listed
   * and changed here since, so RequestAddress claims a free one without listing first. Only a
   * hint: an address is handed out once its create-if-absent claim succeeds, and a claim that
   * fails, or a block that looks full, lists again.
   */
  private readonly heldHere = new Map<string, Set<bigint>>();
  /**
   * Containers' address claims this IPAM made, as written, by "<net>/<address>", until the
   * CreateEndpoint that uses one takes it: it then needs no store read to know the claim.
   */
  private readonly fresh = new Map<string, Versioned<AddressRecord>>();

  constructor(
    private readonly registry: Registry,
    private readonly options: IpamOptions,
    /** None: everything is read from the store. */
    private readonly known?: KnownPools,
  ) {}

  async requestPool(req: RequestPoolRequest): Promise<RequestPoolResult> {
    const family = req.v6 ? 6 : 4;
    const blockSize = blockSizeOption(req.options, family);
    const { pool, subPool } = req;
    if (subPool !== undefined && pool === undefined) throw new BadRequestError(`--ip-range ${subPool} needs --subnet`);
    if (family === 6 && pool === undefined) {
      throw new BadRequestError('--ipv6 needs an IPv6 --subnet, such as --subnet fd00:96::/64 (sluice picks no IPv6 subnet of its own)');
    }
    const network = await this.lock.run('pools', () =>
      pool === undefined ? this.pickPool(blockSize) : this.ensurePool(pool, family, blockSize, subPool),
    );
    this.creating.add(network.key);
    const subnet = ip.parseCidr(network.subnet)!;
    return {
      poolId: network.key,
      pool: network.subnet,
      data: { 'com.docker.network.gateway': `${network.gateway}/${subnet.prefix}` },
    };
  }

  /** Forgets a pool no host uses any more (Docker's retries for auto-picked pools, or a rolled-back create). */
  async releasePool(poolId: string): Promise<void> {
    this.creating.delete(poolId);
    await this.lock.run('pools', async () => {
      const network = await this.registry.getNetwork(poolId);
      if (!network || network.record.managed) return;
      const [dockerNets, blocks, networks] = await Promise.all([
        this.registry.listDockerNets(),
        this.registry.listBlocks(poolId),
        this.registry.listNetworks(),
      ]);
      // An IPv6 pool is in use wherever the network it belongs to (settings.ipv6Subnet) is.
      const users = new Set([poolId, ...networks.filter((n) => n.settings?.ipv6Subnet === network.record.subnet).map((n) => n.key)]);
      if (dockerNets.some((d) => users.has(d.network)) || blocks.length > 0) return;
      await this.releaseGatewayClaim(network.record);
      await this.releaseAuxAddresses(network.record);
      await this.registry.deleteNetwork(poolId);
    });
  }

  async requestAddress(req: RequestAddressRequest): Promise<{ address: string }> {
    const withPrefix = (address: string, network: NetworkRecord) => ({ address: `${address}/${ip.parseCidr(network.subnet)!.prefix}` });
    if (req.requestType !== GATEWAY_REQUEST && req.address === undefined) {
      // Every container start: the network and its blocks as the agent knows them, else read side by side (the pool ID is the network key).
      return this.lock.run(req.poolId, async () => {
        const [network, blocks] = await Promise.all([
          this.knownNetwork(req.poolId),
          this.known?.knownBlocks(req.poolId) ?? this.registry.listBlocks(req.poolId),
        ]);
        return withPrefix(await this.allocateAny(network, ip.parseCidr(network.subnet)!, blocks), network);
      });
    }
    const network = await this.getNetwork(req.poolId);
    const subnet = ip.parseCidr(network.subnet)!;
    if (req.requestType === GATEWAY_REQUEST) return withPrefix(await this.gatewayAddress(network, subnet, req.address), network);
    const requested = canonicalAddress(req.address!, subnet);
    if (this.creating.has(network.key)) return withPrefix(await this.reserveAux(network, subnet, requested), network);
    return this.lock.run(network.key, async () => withPrefix(await this.allocateSpecific(network, subnet, requested), network));
  }

  async releaseAddress(poolId: string, given: string): Promise<void> {
    const network = await this.knownNetwork(poolId);
    const subnet = ip.parseCidr(network.subnet)!;
    const parsed = ip.parseIp(given);
    if (parsed?.family !== subnet.family) throw new BadRequestError(`ReleaseAddress: "${given}" is not an ${FAMILY[subnet.family].name} address`);
    const address = ip.formatIp(parsed);
    // The gateway is the same virtual address on every host: one host's network rm does not free it.
    if (address === network.gateway) return;
    const block = ip.formatCidr(ip.blockOf(parsed, network.blockSize));
    const held = await this.registry.getAddress(network.key, block, address);
    if (held?.record.kind === 'aux') {
      // A reservation no create settled is a failed create's: freed. A settled one stays until the network goes.
      // Settled by a CreateNetwork maybe a moment ago, on this host: the settings as stored.
      const settled = Object.values((await this.getNetwork(poolId)).settings?.auxAddresses ?? {}).includes(address);
      if (!settled && (await this.registry.releaseAddress(network.key, block, address, held.modRevision))) this.forget(network.key, block, parsed.value);
      return;
    }
    // Another host's address is not ours to free, even if Docker asks.
    if (!held || held.record.node !== this.options.node) return;
    // Docker releases after DeleteEndpoint (or after a failed CreateEndpoint, which leaves no
    // endpoint): an endpoint still there means a container is using the address. The usual case,
    // its endpoint gone, is one transaction.
    if (await this.registry.releaseUnheldAddress(block, held)) return this.forget(network.key, block, parsed.value);
    const holder = held.record.endpointId;
    const holding = holder === undefined ? undefined : (await this.registry.getEndpoint(this.options.node, holder))?.record;
    if (holding !== undefined && (holding.address === address || holding.addressV6 === address)) {
      throw new ConflictError(
        `ReleaseAddress: ${address} is in use by endpoint ${holding.id.slice(0, 12)}: it is released after DeleteEndpoint removes that endpoint`,
      );
    }
    if (await this.registry.releaseAddress(network.key, block, address, held.modRevision)) this.forget(network.key, block, parsed.value);
  }

  private forget(net: string, block: string, value: bigint): void {
    this.heldHere.get(`${net}/${block}`)?.delete(value);
    this.fresh.delete(`${net}/${ip.formatIp(ip.at(ip.parseCidr(block)!, value))}`);
  }

  /** Gives up this host's blocks of a network that no longer has addresses here. */
  async releaseBlocks(net: string): Promise<void> {
    await this.lock.run(net, async () => {
      const blocks = await this.registry.listBlocks(net);
      for (const block of blocks.filter((b) => b.node === this.options.node)) {
        const addresses = await this.registry.listAddresses(net, block.block);
        if (addresses.some((a) => a.record.kind === 'endpoint')) continue;
        await this.registry.releaseBlock(net, block.block);
        this.heldHere.delete(`${net}/${block.block}`);
      }
    });
  }

  private async getNetwork(poolId: string): Promise<NetworkRecord> {
    return (await this.getVersionedNetwork(poolId)).record;
  }

  /** For the calls of container starts and removals: what they use of a network never changes once it has containers. */
  private async knownNetwork(poolId: string): Promise<NetworkRecord> {
    return this.known?.knownPool(poolId) ?? this.getNetwork(poolId);
  }

  private async getVersionedNetwork(poolId: string): Promise<Versioned<NetworkRecord>> {
    const network = await this.registry.getNetwork(poolId);
    if (!network) throw new NotFoundError(`unknown pool ${poolId}: no sluice network has this subnet (was it removed?)`);
    return network;
  }

  /** The network for `--subnet` (and `--ip-range`): the existing one with that subnet, or a new one. */
  private async ensurePool(pool: string, family: ip.Family, blockSize: number | undefined, subPool: string | undefined): Promise<NetworkRecord> {
    const { name, example, smallest, blockOption } = FAMILY[family];
    const subnet = ip.parseCidr(pool);
    if (subnet?.family !== family) throw new BadRequestError(`--subnet ${pool} is not an ${name} CIDR such as ${example}`);
    if (subnet.prefix > smallest) throw new BadRequestError(`--subnet ${pool} is too small: use a /${smallest} or larger`);
    const range = subPool === undefined ? undefined : ip.parseCidr(subPool);
    if (subPool !== undefined && (range === undefined || range.prefix < subnet.prefix || !ip.contains(subnet, ip.at(range, range.base)))) {
      throw new BadRequestError(`--ip-range ${subPool} is not an ${name} CIDR inside --subnet ${pool}`);
    }
    const defaultSize = family === 4 ? this.options.defaultBlockSize : DEFAULT_IPV6_BLOCK_SIZE;
    const size = blockSize ?? (range ? rangedBlockSize(defaultSize, range) : defaultSize);
    const { network, created } = await defineNetwork(this.registry, () =>
      newNetworkRecord(subnet, size, range ? { ipRange: ip.formatCidr(range) } : {}),
    );
    if (!created && blockSize !== undefined && blockSize !== network.blockSize) {
      throw new ConflictError(
        `sluice network ${network.subnet} already exists with block size /${network.blockSize}; omit --ipam-opt ${blockOption} or use ${network.blockSize}`,
      );
    }
    const wantedRange = range && ip.formatCidr(range);
    if (!created && network.ipRange !== wantedRange) {
      const has = network.ipRange === undefined ? 'without --ip-range' : `with --ip-range ${network.ipRange}`;
      throw new ConflictError(`sluice network ${network.subnet} already exists ${has}: create it on this host the same way`);
    }
    return network;
  }

  /** Docker asked for any pool: a free subnet of the default supernet, a different one on each call. */
  private async pickPool(blockSize: number | undefined): Promise<NetworkRecord> {
    const { network } = await defineNetwork(this.registry, (existing) => {
      const subnet = pickSubnet(
        this.options.defaultSupernet,
        this.options.defaultSubnetPrefix,
        existing.map((n) => ip.parseCidr(n.subnet)!),
      );
      if (!subnet) {
        throw new ExhaustedError(
          `no free /${this.options.defaultSubnetPrefix} left in the default supernet ${ip.formatCidr(this.options.defaultSupernet)}: pass --subnet`,
        );
      }
      return newNetworkRecord(subnet, blockSize ?? this.options.defaultBlockSize);
    });
    return network;
  }

  private async releaseGatewayClaim(network: NetworkRecord): Promise<void> {
    await this.registry.releaseAddress(network.key, gatewayBlock(network), network.gateway);
  }

  private async releaseAuxAddresses(network: NetworkRecord): Promise<void> {
    const aux = (await this.registry.listAddresses(network.key)).filter((a) => a.record.kind === 'aux');
    for (const { record } of aux) {
      await this.registry.releaseAddress(network.key, blockOfAddress(network, record.address), record.address);
    }
  }

  /**
   * CreateNetwork of this host: records its settings on the network if it is
   * the first create anywhere, or checks they are the ones the network was
   * created with. A compare-and-swap, so two hosts' first creates cannot both
   * settle different settings.
   */
  async settleNetwork(net: string, settings: NetworkSettings, differ: (existing: NetworkSettings) => string | undefined): Promise<NetworkRecord> {
    this.creating.delete(net);
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      const current = await this.getVersionedNetwork(net);
      const existing = current.record.settings;
      if (existing !== undefined) {
        const mismatch = differ(existing);
        if (mismatch !== undefined) {
          throw new ConflictError(`sluice network ${current.record.subnet} was created ${mismatch}: create it on this host the same way`);
        }
        return current.record;
      }
      const updated = { ...current.record, settings };
      if (await this.registry.updateNetwork(updated, current.modRevision, gatewayClaim(updated))) return updated;
    }
    throw new ConflictError(`network ${net} changed too often meanwhile: try again`);
  }

  /** `--gateway G` on create: G becomes the network's gateway if no host uses the network yet. */
  private async gatewayAddress(network: NetworkRecord, subnet: ip.Cidr, given: string | undefined): Promise<string> {
    if (given === undefined) return network.gateway;
    const requested = canonicalAddress(given, subnet);
    if (requested === network.gateway) return network.gateway;
    if (!isHostAddress(subnet, ip.parseIp(requested)!.value)) {
      throw new BadRequestError(`--gateway ${requested} is not a host address of ${network.subnet}`);
    }
    return this.lock.run(network.key, async () => {
      const current = await this.registry.getNetwork(network.key);
      if (!current) throw new NotFoundError(`network ${network.subnet} was removed meanwhile`);
      // Another host's create with the same --gateway got here first.
      if (current.record.gateway === requested) return requested;
      const inUse = (await this.registry.listBlocks(network.key)).length > 0;
      if (inUse) {
        throw new ConflictError(
          `network ${network.subnet} is in use with gateway ${current.record.gateway}: use --gateway ${current.record.gateway} or omit --gateway`,
        );
      }
      const updated = { ...current.record, gateway: requested };
      // The new gateway is claimed with the change; the old one is freed only once the change is made.
      if (!(await this.registry.updateNetwork(updated, current.modRevision, gatewayClaim(updated)))) {
        // Lost to another host: fine if it set the same gateway.
        if ((await this.registry.getNetwork(network.key))?.record.gateway === requested) return requested;
        throw new ConflictError(`network ${network.subnet} changed meanwhile: try again`);
      }
      await this.releaseGatewayClaim(current.record);
      return requested;
    });
  }

  /** The block of `requested`, a host address of the network other than its gateway. */
  private specificBlock(network: NetworkRecord, subnet: ip.Cidr, requested: string): string {
    const address = ip.parseIp(requested)!;
    if (!ip.contains(subnet, address)) throw new BadRequestError(`address ${requested} is outside the network's subnet ${network.subnet}`);
    if (!isHostAddress(subnet, address.value)) {
      throw new BadRequestError(`address ${requested} is the network${subnet.family === 4 ? ' or broadcast' : ''} address of ${network.subnet}`);
    }
    if (requested === network.gateway) throw new ConflictError(`address ${requested} is the network's gateway`);
    return ip.formatCidr(ip.blockOf(address, network.blockSize));
  }

  /**
   * `--aux-address`: reserved for the whole cluster (node '*', whoever holds
   * its block), so no host hands it out and every host's create of the
   * network may ask for it again.
   */
  private async reserveAux(network: NetworkRecord, subnet: ip.Cidr, requested: string): Promise<string> {
    const block = this.specificBlock(network, subnet, requested);
    if (await this.registry.claimAddress(block, { network: network.key, address: requested, node: '*', kind: 'aux' })) return requested;
    const holder = await this.registry.getAddress(network.key, block, requested);
    if (holder?.record.kind === 'aux') return requested;
    throw new ConflictError(`--aux-address ${requested} is already in use on node ${holder?.record.node ?? '?'}: choose a free address`);
  }

  /** `--ip`: that exact address, in a block this host holds or can claim. */
  private async allocateSpecific(network: NetworkRecord, subnet: ip.Cidr, requested: string): Promise<string> {
    const block = this.specificBlock(network, subnet, requested);
    const owner = await this.ensureBlock(network, block);
    if (owner !== this.options.node) {
      throw new ConflictError(
        `address ${requested} is in block ${block}, held by node ${owner}: choose an address in a block of this node (see sluice status) or omit --ip`,
      );
    }
    const record: AddressRecord = { network: network.key, address: requested, node: this.options.node, kind: 'endpoint' };
    if (this.remember(await this.registry.claimAddress(block, record))) return requested;
    const holder = await this.registry.getAddress(network.key, block, requested);
    if (holder?.record.kind === 'aux') throw new ConflictError(`address ${requested} is reserved with --aux-address: choose another --ip`);
    const by = holder?.record.endpointId ? ` by endpoint ${holder.record.endpointId.slice(0, 12)}` : '';
    throw new ConflictError(`address ${requested} is already in use${by} on node ${holder?.record.node ?? '?'}`);
  }

  /** Claims `block` for this node if nobody holds it; returns the holder. */
  private async ensureBlock(network: NetworkRecord, block: string): Promise<string> {
    const held = await this.registry.getBlock(network.key, block);
    if (held) return held.node;
    if (await this.registry.claimBlock({ network: network.key, block, node: this.options.node })) return this.options.node;
    return (await this.registry.getBlock(network.key, block))?.node ?? this.options.node;
  }

  /** Any free address: from this node's blocks (`listed`: as just read) first, then from a newly claimed block. */
  private async allocateAny(network: NetworkRecord, subnet: ip.Cidr, listed: BlockRecord[]): Promise<string> {
    // With --ip-range only its addresses are handed out, from the blocks that overlap it.
    const range = network.ipRange === undefined ? subnet : ip.parseCidr(network.ipRange)!;
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      const blocks = attempt === 0 ? listed : await this.registry.listBlocks(network.key);
      for (const block of blocks.filter((b) => b.node === this.options.node)) {
        const got = await this.allocateInBlock(network, subnet, ip.parseCidr(block.block)!, range);
        if (got) return got;
      }
      const claimed = new Set(blocks.map((b) => ip.parseCidr(b.block)!.base));
      const next = freeBlocks(range, network.blockSize, claimed).next();
      if (next.done) {
        const where = network.ipRange === undefined ? '' : ` (--ip-range ${network.ipRange})`;
        throw new ExhaustedError(
          `network ${network.subnet}${where} is full: all blocks of /${network.blockSize} are held and this node's are used up`,
        );
      }
      // Whether we win the claim or another node does, the next pass sees the new state.
      await this.registry.claimBlock({ network: network.key, block: ip.formatCidr(next.value), node: this.options.node });
    }
    throw new ConflictError(`could not allocate in ${network.subnet}: too much contention, try again`);
  }

  private async allocateInBlock(network: NetworkRecord, subnet: ip.Cidr, block: ip.Cidr, range: ip.Cidr): Promise<string | undefined> {
    const blockText = ip.formatCidr(block);
    const key = `${network.key}/${blockText}`;
    const remembered = this.heldHere.get(key);
    if (remembered) {
      const guess = freeAddresses(block, subnet, remembered, range).next();
      if (!guess.done && (await this.claimInBlock(network, block, guess.value))) {
        remembered.add(guess.value);
        return ip.formatIp(ip.at(block, guess.value));
      }
    }
    const taken = new Set((await this.registry.listAddresses(network.key, blockText)).map((a) => ip.parseIp(a.record.address)!.value));
    this.heldHere.set(key, taken);
    for (const candidate of freeAddresses(block, subnet, taken, range)) {
      if (await this.claimInBlock(network, block, candidate)) {
        taken.add(candidate);
        return ip.formatIp(ip.at(block, candidate));
      }
    }
    return undefined;
  }

  private async claimInBlock(network: NetworkRecord, block: ip.Cidr, value: bigint): Promise<boolean> {
    const address = ip.formatIp(ip.at(block, value));
    return this.remember(await this.registry.claimAddress(ip.formatCidr(block), { network: network.key, address, node: this.options.node, kind: 'endpoint' }));
  }

  /** Keeps a claim this call made for takeClaim; true if there is one. */
  private remember(claim: Versioned<AddressRecord> | undefined): boolean {
    if (claim) this.fresh.set(`${claim.record.network}/${claim.record.address}`, claim);
    return claim !== undefined;
  }

  /** A container's address claim as this IPAM wrote it, once: undefined if it did not (a restart since) or gave it already. */
  takeClaim(net: string, address: string): Versioned<AddressRecord> | undefined {
    const key = `${net}/${address}`;
    const claim = this.fresh.get(key);
    this.fresh.delete(key);
    return claim;
  }
}

/** `--block-size` for IPv4 pools, `--block-size-v6` for IPv6 ones: Docker sends the same --ipam-opt to both. */
function blockSizeOption(options: Record<string, string>, family: ip.Family): number | undefined {
  const { blockOption, blocks } = FAMILY[family];
  const value = options[blockOption];
  if (value === undefined) return undefined;
  const size = Number(value);
  if (!Number.isInteger(size) || size < blocks.min || size > blocks.max) {
    throw new BadRequestError(`--ipam-opt ${blockOption}=${value}: expected a prefix length from ${blocks.min} to ${blocks.max}, e.g. ${blocks.example}`);
  }
  return size;
}

/** `--ip`, `--ip6`, `--gateway` or `--aux-address` as the store keeps it: the canonical text of an address of the pool's family. */
function canonicalAddress(given: string, subnet: ip.Cidr): string {
  const parsed = ip.parseIp(given);
  if (parsed?.family !== subnet.family) throw new BadRequestError(`"${given}" is not an ${FAMILY[subnet.family].name} address`);
  return ip.formatIp(parsed);
}
