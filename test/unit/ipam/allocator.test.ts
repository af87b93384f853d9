import * as ip from '../../../src/net/ip';
import { freeAddresses, freeBlocks, isHostAddress, pickSubnet } from '../../../src/ipam/allocator';

const cidr = (text: string): ip.Cidr => ip.parseCidr(text)!;
const value = (text: string): bigint => ip.parseIp(text)!.value;
const addresses = (block: ip.Cidr, values: Iterable<bigint>): string[] => [...values].map((v) => ip.formatIp(ip.at(block, v)));

describe('allocation choices', () => {
  it('skips the network and broadcast address of an IPv4 subnet and taken addresses', () => {
    const subnet = cidr('10.0.0.0/29');
    expect(addresses(subnet, freeAddresses(subnet, subnet, new Set([value('10.0.0.2')])))).toEqual([
      '10.0.0.1',
      '10.0.0.3',
      '10.0.0.4',
      '10.0.0.5',
      '10.0.0.6',
    ]);
  });

  it('hands out the last address of an IPv6 subnet, which has no broadcast, but not its first', () => {
    const subnet = cidr('fd00:96::/125');
    expect(addresses(subnet, freeAddresses(subnet, subnet, new Set([value('fd00:96::3')])))).toEqual([
      'fd00:96::1',
      'fd00:96::2',
      'fd00:96::4',
      'fd00:96::5',
      'fd00:96::6',
      'fd00:96::7',
    ]);
    expect(isHostAddress(subnet, value('fd00:96::'))).toBe(false);
    expect(isHostAddress(subnet, value('fd00:96::8'))).toBe(false);
  });

  it('keeps to the --ip-range within a block', () => {
    const subnet = cidr('fd00:96::/64');
    const block = cidr('fd00:96::40/122');
    expect(addresses(block, freeAddresses(block, subnet, new Set(), cidr('fd00:96::7c/126')))).toEqual([
      'fd00:96::7c',
      'fd00:96::7d',
      'fd00:96::7e',
      'fd00:96::7f',
    ]);
  });

  it('proposes unclaimed blocks first fit, of either family', () => {
    const claimed4 = new Set([value('10.0.0.0'), value('10.0.0.128')]);
    expect([...freeBlocks(cidr('10.0.0.0/24'), 26, claimed4)].map(ip.formatCidr)).toEqual(['10.0.0.64/26', '10.0.0.192/26']);
    const claimed6 = new Set([value('fd00:96::')]);
    const blocks = freeBlocks(cidr('fd00:96::/64'), 122, claimed6);
    expect([blocks.next().value, blocks.next().value].map((b) => ip.formatCidr(b as ip.Cidr))).toEqual(['fd00:96::40/122', 'fd00:96::80/122']);
  });

  it('picks a subnet clear of existing ones', () => {
    expect(ip.formatCidr(pickSubnet(cidr('10.96.0.0/12'), 16, [cidr('10.96.0.0/16'), cidr('10.97.5.0/24')])!)).toBe('10.98.0.0/16');
    expect(pickSubnet(cidr('10.96.0.0/16'), 16, [cidr('10.0.0.0/8')])).toBeUndefined();
  });
});
