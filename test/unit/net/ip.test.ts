import * as ip from '../../../src/net/ip';

const cidr = (text: string): ip.Cidr => ip.parseCidr(text)!;
const address = (text: string): ip.Address => ip.parseIp(text)!;

describe('address arithmetic of both families', () => {
  it('formats IPv6 canonically (RFC 5952) whatever form it was given in', () => {
    expect(ip.formatIp(address('FD00:0096:0000:0000:0000:0000:0000:0001'))).toBe('fd00:96::1');
    expect(ip.formatIp(address('2001:db8:0:1:0:0:0:1'))).toBe('2001:db8:0:1::1');
    expect(ip.formatIp(address('::'))).toBe('::');
    expect(ip.formatIp(address('10.96.0.1'))).toBe('10.96.0.1');
    expect(address('10.96.0.1')).toEqual({ family: 4, value: 0x0a600001n });
  });

  it('refuses what is not an address or a CIDR of its family', () => {
    for (const bad of ['10.96.0', '10.96.0.256', 'fe80::1%eth0', 'fd00::1::2', 'x', '']) expect(ip.parseIp(bad)).toBeUndefined();
    for (const bad of ['10.96.0.0/33', 'fd00::/129', 'fd00::/', 'fd00::/64/1', 'fd00::']) expect(ip.parseCidr(bad)).toBeUndefined();
  });

  it('clears host bits and tells containment, overlap and blocks within a family', () => {
    expect(ip.formatCidr(cidr('fd00:96::17/64'))).toBe('fd00:96::/64');
    expect(ip.formatCidr(cidr('10.96.7.1/16'))).toBe('10.96.0.0/16');
    const net = cidr('fd00:96::/64');
    expect(ip.contains(net, address('fd00:96::ffff:1'))).toBe(true);
    expect(ip.contains(net, address('fd00:97::1'))).toBe(false);
    expect(ip.overlaps(net, cidr('fd00:96::/122'))).toBe(true);
    expect(ip.overlaps(net, cidr('fd00:97::/64'))).toBe(false);
    expect(ip.formatCidr(ip.blockOf(address('fd00:96::7f'), 122))).toBe('fd00:96::40/122');
    expect(ip.size(cidr('fd00:96::/122'))).toBe(64n);
    expect(ip.lastAddress(cidr('10.96.0.0/30'))).toBe(0x0a600003n);
  });

  it('never mixes the families: ::a60:0 is not 10.96.0.0', () => {
    expect(ip.contains(cidr('::/96'), address('10.96.0.1'))).toBe(false);
    expect(ip.overlaps(cidr('::/0'), cidr('10.0.0.0/8'))).toBe(false);
  });
});
