import { blockOf, contains, formatCidr, formatIp, parseCidr, parseIp } from '../../../src/net/ipv4';

describe('IPv4 arithmetic', () => {
  it('parses and formats addresses and CIDRs, clearing host bits', () => {
    expect(formatIp(parseIp('10.96.0.1')!)).toBe('10.96.0.1');
    expect(parseIp('255.255.255.255')).toBe(0xffffffff);
    expect(formatCidr(parseCidr('10.96.7.1/16')!)).toBe('10.96.0.0/16');
    for (const bad of ['10.96.0', '10.96.0.256', 'x', '10.96.0.1/', '10.96.0.1/33', '10.96.0.1/16/2', '::1/64']) {
      expect(parseCidr(bad.includes('/') ? bad : `${bad}/24`)).toBeUndefined();
    }
  });

  it('tells containment and the block of an address', () => {
    const net = parseCidr('10.96.0.0/16')!;
    expect(contains(net, parseIp('10.96.255.1')!)).toBe(true);
    expect(contains(net, parseIp('10.97.0.1')!)).toBe(false);
    expect(formatCidr(blockOf(parseIp('10.96.3.77')!, 26))).toBe('10.96.3.64/26');
  });
});
