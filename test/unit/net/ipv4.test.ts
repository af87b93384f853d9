import { blockOf, contains, formatCidr, formatIp, overlaps, parseCidr, parseIp } from '../../../src/net/ipv4';
import { freeAddresses, freeBlocks, pickSubnet } from '../../../src/ipam/allocator';

describe('IPv4 arithmetic', () => {
  it('parses and formats addresses and CIDRs, clearing host bits', () => {
    expect(formatIp(parseIp('10.96.0.1')!)).toBe('10.96.0.1');
    expect(parseIp('255.255.255.255')).toBe(0xffffffff);
    expect(formatCidr(parseCidr('10.96.7.1/16')!)).toBe('10.96.0.0/16');
    for (const bad of ['10.96.0', '10.96.0.256', 'x', '10.96.0.1/', '10.96.0.1/33', '10.96.0.1/16/2', '::1/64']) {
      expect(parseCidr(bad.includes('/') ? bad : `${bad}/24`)).toBeUndefined();
    }
  });

  it('tells containment and overlap', () => {
    const net = parseCidr('10.96.0.0/16')!;
    expect(contains(net, parseIp('10.96.255.1')!)).toBe(true);
    expect(contains(net, parseIp('10.97.0.1')!)).toBe(false);
    expect(overlaps(net, parseCidr('10.96.128.0/17')!)).toBe(true);
    expect(overlaps(net, parseCidr('10.97.0.0/16')!)).toBe(false);
    expect(formatCidr(blockOf(parseIp('10.96.3.77')!, 26))).toBe('10.96.3.64/26');
  });
});

describe('allocation choices', () => {
  it('skips the network and broadcast address of the subnet and taken addresses', () => {
    const subnet = parseCidr('10.0.0.0/29')!;
    const free = [...freeAddresses(subnet, subnet, new Set([parseIp('10.0.0.2')!]))].map(formatIp);
    expect(free).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('proposes unclaimed blocks first fit, and a subnet clear of existing ones', () => {
    const subnet = parseCidr('10.0.0.0/24')!;
    const claimed = new Set([parseIp('10.0.0.0')!, parseIp('10.0.0.128')!]);
    expect([...freeBlocks(subnet, 26, claimed)].map(formatCidr)).toEqual(['10.0.0.64/26', '10.0.0.192/26']);
    expect(formatCidr(pickSubnet(parseCidr('10.96.0.0/12')!, 16, [parseCidr('10.96.0.0/16')!, parseCidr('10.97.5.0/24')!])!)).toBe(
      '10.98.0.0/16',
    );
    expect(pickSubnet(parseCidr('10.96.0.0/16')!, 16, [parseCidr('10.0.0.0/8')!])).toBeUndefined();
  });
});
