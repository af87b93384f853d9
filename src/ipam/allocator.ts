/**
 * Pure allocation choices: which address of a block, which block of a
 * network, which subnet of the default supernet. The store decides who wins
 * a race; these functions only propose candidates in a stable order.
 */
import { type Cidr, blockOf, contains, lastAddress, overlaps, size } from '../net/ipv4';

/**
 * Addresses of `block` that may be handed out: in `range` (the `--ip-range`,
 * or the subnet), not the subnet's network or broadcast address, nor `taken`.
 */
export function* freeAddresses(block: Cidr, subnet: Cidr, taken: ReadonlySet<number>, range: Cidr = subnet): Generator<number> {
  const broadcast = lastAddress(subnet);
  for (let address = block.base; address <= lastAddress(block); address++) {
    if (address === subnet.base || address === broadcast || taken.has(address) || !contains(range, address)) continue;
    yield address;
  }
}

/** Blocks overlapping `range` (a subnet, or its `--ip-range`) not yet claimed by any node, first fit. */
export function* freeBlocks(range: Cidr, blockPrefix: number, claimed: ReadonlySet<number>): Generator<Cidr> {
  const step = 2 ** (32 - blockPrefix);
  for (let base = blockOf(range.base, blockPrefix).base; base <= lastAddress(range); base += step) {
    if (!claimed.has(base)) yield { base, prefix: blockPrefix };
  }
}

/** The first `prefix`-sized subnet of `supernet` that overlaps none of `existing`. */
export function pickSubnet(supernet: Cidr, prefix: number, existing: readonly Cidr[]): Cidr | undefined {
  const step = 2 ** (32 - prefix);
  for (let base = supernet.base; base < supernet.base + size(supernet); base += step) {
    const candidate = { base, prefix };
    if (!existing.some((other) => overlaps(candidate, other))) return candidate;
  }
  return undefined;
}

/** The default gateway of a subnet: its first host address. */
export function defaultGateway(subnet: Cidr): number {
  return subnet.base + 1;
}

export function isHostAddress(subnet: Cidr, address: number): boolean {
  return contains(subnet, address) && address !== subnet.base && address !== lastAddress(subnet);
}
