/**
 * The WireGuard device of LinuxDataplane against the real kernel, inside the throwaway namespace
 * of scripts/in-netns.sh (this namespace plays the host), with a peer host in a namespace made
 * here running its own wireguard-go, configured by hand with `wg`. Where the kernel has no
 * WireGuard module (the build machines), the dataplane runs wireguard-go too.
 *
 *   host: sluice.wg, block 10.96.0.0/26 (10.96.0.1 on lo), fd00:96::/122 (fd00:96::1)   ── it-wg0 192.168.78.1
 *   peer: wgpeer, block 10.96.1.0/26 (10.96.1.1 on lo), fd00:96::40/122 (fd00:96::41) ── it-wg1 192.168.78.2
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SpawnRunner } from '../../src/dataplane/linux/command-runner';
import { LinuxDataplane, writeProcSys } from '../../src/dataplane/linux/linux-dataplane';
import { generatePrivateKey, publicKeyOf } from '../../src/encryption/keys';
import { Netns, json, sh } from './kernel';
import { assertThrowawayNetns } from './netns-guard';

assertThrowawayNetns();
jest.setTimeout(60_000);

const dp = new LinuxDataplane(new SpawnRunner(), writeProcSys);
const hostKey = generatePrivateKey();
const peerKey = generatePrivateKey();
const PEER = { publicKey: publicKeyOf(peerKey), endpoint: '192.168.78.2:51821', allowedIps: ['10.96.1.0/26'] };
let peer: Netns;
let peerWireguard: ChildProcess;

/** One ping from `source` in `netns` (or this namespace). */
function pings(from: { netns?: Netns; source: string }, to: string): boolean {
  const ping = ['ping', '-c1', '-W1', '-I', from.source, to];
  const [command, ...args] = from.netns ? ['nsenter', `--net=/run/netns/${from.netns.name}`, ...ping] : ping;
  return spawnSync(command!, args, { stdio: 'ignore' }).status === 0;
}

async function until(check: () => boolean): Promise<void> {
  for (let tries = 0; !check(); tries++) {
    if (tries === 50) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  peer = new Netns('wgpeer');
  sh('ip', 'link', 'add', 'it-wg0', 'type', 'veth', 'peer', 'name', 'it-wg1');
  sh('ip', 'address', 'add', '192.168.78.1/24', 'dev', 'it-wg0');
  sh('ip', 'link', 'set', 'it-wg0', 'up');
  sh('ip', 'address', 'add', '10.96.0.1/32', 'dev', 'lo');
  sh('ip', 'address', 'add', 'fd00:96::1/128', 'dev', 'lo');
  sh('ip', 'link', 'set', 'it-wg1', 'netns', peer.name);
  peer.sh('ip', 'address', 'add', '192.168.78.2/24', 'dev', 'it-wg1');
  peer.sh('ip', 'link', 'set', 'it-wg1', 'up');
  // Its own block, and an address outside it to try spoofing from.
  peer.sh('ip', 'address', 'add', '10.96.1.1/32', 'dev', 'lo');
  peer.sh('ip', 'address', 'add', '10.96.2.1/32', 'dev', 'lo');
  peer.sh('ip', 'address', 'add', 'fd00:96::41/128', 'dev', 'lo');
  peerWireguard = spawn('nsenter', [`--net=/run/netns/${peer.name}`, 'wireguard-go', '-f', 'wgpeer'], { stdio: 'ignore' });
  await until(() => spawnSync('wg', ['show', 'wgpeer'], { stdio: 'ignore' }).status === 0);
  const keyDir = mkdtempSync(path.join(tmpdir(), 'sluice-it-wg-'));
  writeFileSync(path.join(keyDir, 'key'), peerKey, { mode: 0o600 });
  sh('wg', 'set', 'wgpeer', 'listen-port', '51821', 'private-key', path.join(keyDir, 'key'));
  rmSync(keyDir, { recursive: true });
  sh('wg', 'set', 'wgpeer', 'peer', publicKeyOf(hostKey), 'endpoint', '192.168.78.1:51820', 'allowed-ips', '10.96.0.0/26,fd00:96::/122');
  peer.sh('ip', 'link', 'set', 'wgpeer', 'up');
  // The peer sends everything for 10.96.0.0/16 through its tunnel, whatever the source.
  peer.sh('ip', 'route', 'add', '10.96.0.0/16', 'dev', 'wgpeer');
  peer.sh('ip', 'route', 'add', 'fd00:96::/64', 'dev', 'wgpeer');
});

afterAll(async () => {
  spawnSync('ip', ['link', 'del', 'sluice.wg']); // wireguard-go ends with its device
  peerWireguard?.kill();
  peer?.delete();
  sh('ip', 'link', 'del', 'it-wg0');
  // Its control socket is named after the device, in the machine's /run/wireguard: the next run's
  // wireguard-go must not find this one's still there.
  await until(() => !existsSync('/run/wireguard/sluice.wg.sock') && !existsSync('/run/wireguard/wgpeer.sock'));
});

describe('the WireGuard device', () => {
  it('is made with the MTU asked for, by the kernel module if there is one, else by wireguard-go', async () => {
    const implementation = await dp.ensureWireguard(1440);
    const [link] = json<{ mtu: number; flags: string[]; linkinfo?: { info_kind: string } }[]>('ip', '-j', '-d', 'link', 'show', 'dev', 'sluice.wg');
    expect(link).toMatchObject({ mtu: 1440, flags: expect.arrayContaining(['UP']) });
    expect(implementation).toBe(link?.linkinfo?.info_kind === 'wireguard' ? 'kernel' : 'wireguard-go');
    // Again, as after an agent restart: the running device is found, not made twice.
    expect(await dp.ensureWireguard(1420)).toBe(implementation);
    expect(json<{ mtu: number }[]>('ip', '-j', 'link', 'show', 'dev', 'sluice.wg')[0]?.mtu).toBe(1420);
  });

  it('carries traffic to the peer\'s block once key, peer and route are set', async () => {
    expect(pings({ source: '10.96.0.1' }, '10.96.1.1')).toBe(false);
    await dp.syncWireguard({ privateKey: hostKey, listenPort: 51820, peers: [PEER] });
    await dp.syncRoutes([{ kind: 'wireguard', block: '10.96.1.0/26' }]);
    expect(sh('wg', 'show', 'sluice.wg', 'dump').split('\n')[1]?.split('\t').slice(0, 4)).toEqual([PEER.publicKey, '(none)', PEER.endpoint, '10.96.1.0/26']);
    expect(sh('wg', 'show', 'sluice.wg', 'public-key').trim()).toBe(publicKeyOf(hostKey));
    expect(pings({ source: '10.96.0.1' }, '10.96.1.1')).toBe(true);
  });

  it('carries an IPv6 block through the same tunnel over the IPv4 underlay', async () => {
    expect(pings({ source: 'fd00:96::1' }, 'fd00:96::41')).toBe(false);
    await dp.syncWireguard({ privateKey: hostKey, listenPort: 51820, peers: [{ ...PEER, allowedIps: ['10.96.1.0/26', 'fd00:96::40/122'] }] });
    await dp.syncRoutes([
      { kind: 'wireguard', block: '10.96.1.0/26' },
      { kind: 'wireguard', block: 'fd00:96::40/122' },
    ]);
    expect(pings({ source: 'fd00:96::1' }, 'fd00:96::41')).toBe(true);
    expect(pings({ source: '10.96.0.1' }, '10.96.1.1')).toBe(true);
  });

  it('drops what the peer sends from outside its own blocks (allowed IPs): no spoofing', () => {
    // Echo requests this host took in: a spoofed one must never get that far (a reply could
    // fail for other reasons, so the count is what tells).
    const echoesIn = (): number => {
      const [names, values] = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Icmp:'));
      return Number(values!.split(' ')[names!.split(' ').indexOf('InEchos')]);
    };
    const before = echoesIn();
    expect(pings({ netns: peer, source: '10.96.1.1' }, '10.96.0.1')).toBe(true);
    expect(echoesIn()).toBe(before + 1);
    expect(pings({ netns: peer, source: '10.96.2.1' }, '10.96.0.1')).toBe(false);
    expect(echoesIn()).toBe(before + 1);
  });

  it('removes a peer that is gone, and nothing reaches its block any more', async () => {
    await dp.syncWireguard({ privateKey: hostKey, listenPort: 51820, peers: [] });
    expect(sh('wg', 'show', 'sluice.wg', 'peers').trim()).toBe('');
    expect(pings({ source: '10.96.0.1' }, '10.96.1.1')).toBe(false);
  });
});
