/**
 * Pure allocation choices: which address of a block, which block of a
 * network, which subnet of the default supernet. The store decides who wins
 * a race; these functions only propose candidates in a stable order.
 * Both families: an IPv6 pool has no broadcast address, so only its first
 * (the subnet-router anycast address, RFC 4291 2.6.1) is never handed out.
 */
import { type Cidr, at, contains, lastAddress, overlaps, size } from '../net/ip';

/**
 * Addresses of `block` that may be handed out: in `range` (the `--ip-range`,
 * or the subnet), not the subnet's network or broadcast address, nor `taken`.
 */
export function* freeAddresses(block: Cidr, subnet: Cidr, taken: ReadonlySet<bigint>, range: Cidr = subnet): Generator<bigint> {
  for (let address = block.base; address <= lastAddress(block); address++) {
    if (!isHostAddress(subnet, address) || taken.has(address) || !contains(range, at(block, address))) continue;
    yield address;
  }
}

/** Blocks overlapping `range` (a subnet, or its `--ip-range`) not yet claimed by any node, first fit. */
export function* freeBlocks(range: Cidr, blockPrefix: number, claimed: ReadonlySet<bigint>): Generator<Cidr> {
  const first: Cidr = { ...range, prefix: blockPrefix };
  const step = size(first);
  for (let base = range.base & ~(step - 1n); base <= lastAddress(range); base += step) {
    if (!claimed.has(base)) yield { ...first, base };
  }
}

/** The first `prefix`-sized subnet of `supernet` that overlaps none of `existing`. */
export function pickSubnet(supernet: Cidr, prefix: number, existing: readonly Cidr[]): Cidr | undefined {
  for (const candidate of freeBlocks(supernet, prefix, new Set())) {
    if (!existing.some((other) => overlaps(candidate, other))) return candidate;
  }
  return undefined;
}

/** The default gateway of a subnet: its first host address. */
export function defaultGateway(subnet: Cidr): bigint {
  return subnet.base + 1n;
}

/** In the subnet, and neither its network address nor (IPv4) its broadcast address. */
export function isHostAddress(subnet: Cidr, address: bigint): boolean {
  const broadcast = subnet.family === 4 && address === lastAddress(subnet);
  return contains(subnet, at(subnet, address)) && address !== subnet.base && !broadcast;
}
