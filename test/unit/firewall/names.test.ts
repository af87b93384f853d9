import { BadRequestError } from '../../../src/errors';
import { endpointIfnames, isSluiceHostIfname, vxlanMac } from '../../../src/firewall/names';

describe('endpointIfnames', () => {
  const id = '3f2a9c0d1b7e4a5f8c6d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b';

  it('derives host and container names from the first 11 hex digits, within IFNAMSIZ', () => {
    const names = endpointIfnames(id);
    expect(names).toEqual({ hostIfname: 'slv3f2a9c0d1b7', containerIfname: 'sc3f2a9c0d1b7' });
    expect(names.hostIfname.length).toBeLessThanOrEqual(15);
  });

  it('lowercases, so Docker IDs in either case map to one interface', () => {
    expect(endpointIfnames(id.toUpperCase())).toEqual(endpointIfnames(id));
  });

  it.each(['', 'abc', 'zz2a9c0d1b7e4a5f', '3f2a9c0d1b'])('rejects %j', (bad) => {
    expect(() => endpointIfnames(bad)).toThrow(BadRequestError);
  });
});

describe('isSluiceHostIfname', () => {
  it('accepts exactly the names endpointIfnames makes for the host side', () => {
    expect(isSluiceHostIfname(endpointIfnames('0123456789abcdef').hostIfname)).toBe(true);
    expect(isSluiceHostIfname(endpointIfnames('0123456789abcdef').containerIfname)).toBe(false);
  });

  it.each(['sluice0', 'sluice.vxlan', 'sl0123456789', 'sl0123456789ab', 'eth0', 'slABCDEF01234'])('rejects %s', (name) => {
    expect(isSluiceHostIfname(name)).toBe(false);
  });
});

describe('vxlanMac', () => {
  it('is a stable, locally administered unicast MAC per VNI and local address', () => {
    const mac = vxlanMac(1, '192.168.1.10');
    expect(mac).toMatch(/^0e(:[0-9a-f]{2}){5}$/);
    expect(vxlanMac(1, '192.168.1.10')).toBe(mac);
    expect(vxlanMac(2, '192.168.1.10')).not.toBe(mac);
    expect(vxlanMac(1, '192.168.1.11')).not.toBe(mac);
  });
});
