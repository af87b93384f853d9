import { BadRequestError, NotSupportedError } from '../../../src/errors';
import { MTU_OPTION, networkSettings, settingsMismatch, unpublishable } from '../../../src/driver/network-settings';
import type { CreateNetworkRequest, IpamData } from '../../../src/protocol/services';
import type { PortMapping } from '../../../src/model';

const DATA: IpamData = { addressSpace: 'sluice-local', pool: '10.96.0.0/24', gateway: '10.96.0.1/24', auxAddresses: {} };

function create(generic: Record<string, string>, internal = false): CreateNetworkRequest {
  return { networkId: 'a'.repeat(64), generic, internal, ipv6: false, ipv4Data: [DATA], ipv6Data: [] };
}

const tcp = (containerPort: number, hostPort: number): PortMapping => ({ proto: 'tcp', containerPort, hostPort, hostPortEnd: hostPort });

describe('networkSettings', () => {
  it('takes --internal, the MTU option and the aux addresses without their prefix', () => {
    const data = { ...DATA, auxAddresses: { router: '10.96.0.2/24' } };
    expect(networkSettings(create({ [MTU_OPTION]: '1400' }, true), data)).toEqual({
      internal: true,
      mtu: 1400,
      auxAddresses: { router: '10.96.0.2' },
    });
    expect(networkSettings(create({}), DATA)).toEqual({ internal: false, auxAddresses: {} });
  });

  it('refuses an -o it does not know, naming it and the one it takes', () => {
    expect(() => networkSettings(create({ 'com.docker.network.bridge.name': 'br0' }), DATA)).toThrow(
      new NotSupportedError(
        `sluice does not know the option -o com.docker.network.bridge.name: the only -o it takes is ${MTU_OPTION}=N`,
      ),
    );
  });

  it.each(['0', '67', '65536', '1400.5', '-1', 'big', ''])('refuses the MTU %j', (mtu) => {
    expect(() => networkSettings(create({ [MTU_OPTION]: mtu }), DATA)).toThrow(BadRequestError);
  });

  it.each(['68', '65535', '9000'])('accepts the MTU %s (positive control)', (mtu) => {
    expect(networkSettings(create({ [MTU_OPTION]: mtu }), DATA).mtu).toBe(Number(mtu));
  });
});

describe('settingsMismatch', () => {
  const base = { internal: false, auxAddresses: { a: '10.96.0.2' } };

  it('says how the network was created when another create differs', () => {
    expect(settingsMismatch(base, { ...base, internal: true })).toBe('without --internal');
    expect(settingsMismatch({ ...base, internal: true }, base)).toBe('with --internal');
    expect(settingsMismatch({ ...base, mtu: 1400 }, base)).toBe(`with -o ${MTU_OPTION}=1400`);
    expect(settingsMismatch(base, { ...base, mtu: 1400 })).toBe(`without -o ${MTU_OPTION}`);
    expect(settingsMismatch(base, { ...base, auxAddresses: {} })).toBe('with --aux-address a=10.96.0.2');
    expect(settingsMismatch({ ...base, auxAddresses: {} }, base)).toBe('without --aux-address');
  });

  it('finds nothing when the same options come in another order', () => {
    const two = { internal: false, auxAddresses: { a: '10.96.0.2', b: '10.96.0.3' } };
    expect(settingsMismatch(two, { internal: false, auxAddresses: { b: '10.96.0.3', a: '10.96.0.2' } })).toBeUndefined();
  });
});

describe('unpublishable', () => {
  it('accepts tcp and udp with a host port (positive control)', () => {
    expect(unpublishable([tcp(80, 8080), { ...tcp(53, 5353), proto: 'udp' }])).toBeUndefined();
  });

  it('refuses -p 80 and -P (no host port), saying why and what to pass', () => {
    expect(unpublishable([tcp(80, 8080), tcp(443, 0)])).toBe(
      '-p 443/tcp (or -P) has no host port: sluice cannot tell Docker a port it picks (docker port would not show it), so give one, e.g. -p 8080:443',
    );
  });

  it('refuses sctp', () => {
    expect(unpublishable([{ ...tcp(9000, 9000), proto: 'sctp' }])).toMatch(/9000\/sctp: sluice publishes tcp and udp ports only/);
  });
});
