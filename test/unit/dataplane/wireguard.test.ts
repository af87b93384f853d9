import { LinuxWireguard, wireguardConfig } from '../../../src/dataplane/linux/wireguard';
import type { WireguardSettings } from '../../../src/dataplane/dataplane';
import { ScriptedRunner } from './scripted-runner';

const PRIVATE = '8NovLpM56EqSVHRqUCeeC0TNLgJZvOLJTCXfY7z0mHw=';
const PEER = 'lPO0oNQJuqTM25hc/tVOXCPe/EpfdJPC6Jw0N/TePnA=';
const SETTINGS: WireguardSettings = {
  privateKey: PRIVATE,
  listenPort: 51820,
  peers: [{ publicKey: PEER, endpoint: '10.250.0.12:51820', allowedIps: ['10.96.0.64/26', '10.96.1.0/26'] }],
};

describe('the WireGuard configuration text', () => {
  it('holds the key, the port and one section per peer with its endpoint and allowed IPs', () => {
    expect(wireguardConfig(SETTINGS)).toBe(
      `[Interface]\nPrivateKey = ${PRIVATE}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${PEER}\nEndpoint = 10.250.0.12:51820\nAllowedIPs = 10.96.0.64/26, 10.96.1.0/26\n`,
    );
  });

  it('takes IPv6 blocks among the allowed IPs', () => {
    const peers = [{ ...SETTINGS.peers[0]!, allowedIps: ['10.96.0.64/26', 'fd00:96::40/122'] }];
    expect(wireguardConfig({ ...SETTINGS, peers })).toContain('\nAllowedIPs = 10.96.0.64/26, fd00:96::40/122\n');
  });

  it('refuses any value that could add a line or a setting', () => {
    const peer = SETTINGS.peers[0]!;
    expect(() => wireguardConfig({ ...SETTINGS, privateKey: `${PRIVATE}\nListenPort = 1` })).toThrow('not base64 of 32 bytes');
    expect(() => wireguardConfig({ ...SETTINGS, peers: [{ ...peer, endpoint: '10.0.0.1:51820\n[Peer]' }] })).toThrow('is not IPV4:PORT');
    expect(() => wireguardConfig({ ...SETTINGS, peers: [{ ...peer, allowedIps: ['0.0.0.0/0\nEndpoint = x'] }] })).toThrow('is not a CIDR');
    expect(() => wireguardConfig({ ...SETTINGS, listenPort: 0 })).toThrow('WireGuard port 0 is not from 1 to 65535');
  });
});

describe('LinuxWireguard', () => {
  it('uses kernel WireGuard when the module is there', async () => {
    const runner = new ScriptedRunner(({ args }) => (args[0] === '-j' ? { fail: 'Device "sluice.wg" does not exist.' } : ''));
    const started: string[] = [];
    const wg = new LinuxWireguard(runner, (device) => Promise.resolve(void started.push(device)));
    expect(await wg.ensure(1440)).toBe('kernel');
    expect(runner.commandLines.slice(1, 3)).toEqual(['ip link add sluice.wg type wireguard', 'ip -batch -']);
    expect(runner.calls[2]!.input).toBe('link set sluice.wg mtu 1440 up\n');
    expect(started).toEqual([]);
  });

  it('starts wireguard-go where the kernel has no module', async () => {
    const runner = new ScriptedRunner(({ args }) => {
      if (args[0] === '-j') return { fail: 'Device "sluice.wg" does not exist.' };
      if (args[0] === 'link' && args[1] === 'add') return { fail: 'Error: Unknown device type.' };
      return '';
    });
    const started: string[] = [];
    const wg = new LinuxWireguard(runner, (device) => Promise.resolve(void started.push(device)));
    expect(await wg.ensure(1440)).toBe('wireguard-go');
    expect(started).toEqual(['sluice.wg']);
  });

  it('finds the implementation of a device left by an earlier run, and refuses a foreign device of that name', async () => {
    const shown = (kind: string) => new ScriptedRunner(({ args }) => (args[0] === '-j' ? JSON.stringify([{ ifname: 'sluice.wg', linkinfo: { info_kind: kind } }]) : '51820\n'));
    const never = () => Promise.reject(new Error('must not start wireguard-go'));
    expect(await new LinuxWireguard(shown('wireguard'), never).ensure(1440)).toBe('kernel');
    expect(await new LinuxWireguard(shown('tun'), never).ensure(1440)).toBe('wireguard-go');
    await expect(new LinuxWireguard(shown('bridge'), never).ensure(1440)).rejects.toThrow('sluice.wg exists but is a bridge, not WireGuard: delete it');
  });

  it('returns from deleting a userspace device once its wireguard-go no longer answers, so the next cannot lose its socket to it', async () => {
    let answers = 2;
    const runner = new ScriptedRunner(({ command }) => (command !== 'wg' ? '' : answers-- > 0 ? '51820\n' : { fail: 'Unable to access interface: Protocol not supported' }));
    await new LinuxWireguard(runner).remove();
    expect(runner.commandLines.filter((l) => l.startsWith('wg show'))).toHaveLength(3);
  });

  it('deletes the device, and takes a missing one as deleted', async () => {
    const runner = new ScriptedRunner(() => ({ fail: 'Cannot find device "sluice.wg"' }));
    await new LinuxWireguard(runner).remove();
    expect(runner.commandLines).toEqual(['ip link del dev sluice.wg', 'wg show sluice.wg listen-port']);
    await expect(new LinuxWireguard(new ScriptedRunner(() => ({ fail: 'RTNETLINK answers: Operation not permitted' }))).remove()).rejects.toThrow('Operation not permitted');
  });

  it('sets key, port and peers with one wg syncconf, the key on stdin only', async () => {
    const runner = new ScriptedRunner(() => '');
    await new LinuxWireguard(runner).sync(SETTINGS);
    expect(runner.calls).toEqual([{ command: 'sh', args: ['-c', 'cat | wg syncconf "$0" /dev/stdin', 'sluice.wg'], input: wireguardConfig(SETTINGS) }]);
  });
});
