// Encryption between hosts (--encryption wireguard) on three real Docker hosts: cross-host traffic
// goes through WireGuard (here the userspace wireguard-go: the kernel has no module), the underlay
// carries none of it in the clear (and does once encryption is off: the positive control), policy
// holds as before, peers follow hosts joining, dying and rotating their key, and a host without
// encryption is refused by the others.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { captureUnderlay } from '../helpers/capture';
import { eventually as retry } from '../helpers/eventually';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { WEB_FROM_CLIENT } from '../helpers/policies';
import { connects, fetchFrom, pings } from '../helpers/probe';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 30_000) => retry(check, timeoutMs, 250);
const NET = 'appnet';
const SUBNET = '10.96.0.0/16';
/** In the page the test fetches across hosts: found in a capture only if it crossed in the clear. */
const SECRET = `sluice-secret-${process.pid}-${Date.now()}`;
/** Short grace period and resync: a dead host is reclaimed within the test. */
const AGENT_FLAGS = ['--grace-period', '1', '--resync-interval', '2'];

describe('three hosts with --encryption wireguard', () => {
  let lab: Lab;
  let dir: string;
  const ip: Record<string, string> = {};

  const wg = async (host: string): Promise<{ publicKey: string; peers: Map<string, string> }> => {
    // `wg show DEV dump`: the device's line (private key, public key, port, fwmark), then one per
    // peer (public key, preshared key, endpoint, allowed ips, …).
    const [device, ...peers] = (await lab.execOk(host, ['wg', 'show', 'sluice.wg', 'dump'])).split('\n').map((l) => l.split('\t'));
    return { publicKey: device![1]!, peers: new Map(peers.map((p) => [p[0]!, p[3]!.split(',').sort().join(',')])) };
  };
  const blocksOf = async (host: string): Promise<string> => {
    const { nodes } = JSON.parse(await lab.sluiceOk('h1', 'status', '-o', 'json')) as { nodes: { name: string; blocks: string[] }[] };
    return nodes.find((n) => n.name === host)!.blocks.sort().join(',');
  };
  const restartAgent = async (host: string, ...flags: string[]): Promise<void> => {
    await lab.agentStop(host);
    await lab.agentStart(host, ...AGENT_FLAGS, ...flags);
  };
  async function web(host: string, name: string, ...labels: string[]): Promise<void> {
    await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    await lab.dockerOk(host, 'exec', name, 'sh', '-c', `echo ${SECRET} > /www/secret.txt`);
    ip[name] = await lab.containerIp(host, name);
  }
  const box = async (host: string, name: string, ...labels: string[]): Promise<void> => {
    await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE, 'sleep', '3600');
  };
  /** Fetches the secret page from h1's client while the underlay port of `host` is captured. */
  async function fetchCaptured(host: string, target: string): Promise<{ page: string; clear: boolean; wireguardPackets: number; packets: number }> {
    const capture = await captureUnderlay(lab, host);
    const { page } = await fetchFrom(lab, 'h1', 'client', target, 80, 5, { path: 'secret.txt' });
    const { bytes, summary } = await capture.stop();
    return {
      page,
      clear: bytes.includes(SECRET),
      wireguardPackets: summary.filter((l) => /\.51820[ :]/.test(l)).length,
      packets: summary.length,
    };
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-wg-e2e-'));
    lab = await Lab.up({ name: 'wg3', hosts: 3, encryption: 'wireguard' });
    await lab.agentStop('h3'); // joins later
    for (const h of ['h1', 'h2']) {
      await restartAgent(h);
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
    }
    await box('h1', 'client', 'role=client');
    await box('h1', 'other', 'role=other');
    await web('h2', 'web2', 'role=web');
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries ping and HTTP across hosts through WireGuard, with nothing of the page in the clear on the underlay', async () => {
    expect(await pings(lab, 'h1', 'client', ip.web2!, { timeoutS: 2 })).toBe('ok');
    const seen = await fetchCaptured('h1', ip.web2!);
    expect(seen.page).toBe(`${SECRET}\n`);
    expect(seen.clear).toBe(false);
    // The capture did see the exchange: as WireGuard packets.
    expect(seen.wireguardPackets).toBeGreaterThan(0);
    expect(await lab.execOk('h1', ['ip', 'route', 'show', 'proto', '252'])).toMatch(/^10\.96\.\d+\.\d+\/26 dev sluice\.wg/m);
    // The container MTU leaves room for WireGuard's 60 bytes: a full-size ping crosses unfragmented.
    expect(await lab.dockerOk('h1', 'exec', 'client', 'cat', '/sys/class/net/eth0/mtu')).toBe('1440');
    expect(await pings(lab, 'h1', 'client', ip.web2!, { timeoutS: 2, size: 1412 })).toBe('ok');
  });

  it('makes each host a peer of the others, allowed exactly its blocks, and keeps the key 0600 on the host', async () => {
    const [h1, h2] = [await wg('h1'), await wg('h2')];
    expect([...h1.peers]).toEqual([[h2.publicKey, await blocksOf('h2')]]);
    expect([...h2.peers]).toEqual([[h1.publicKey, await blocksOf('h1')]]);
    const keyFile = `/run/sluice-lab/wg3/h1/sluice-lib/wireguard.key`;
    expect((statSync(keyFile).mode & 0o777).toString(8)).toBe('600');
    expect(spawnSync('wg', ['pubkey'], { input: readFileSync(keyFile), encoding: 'utf8' }).stdout.trim()).toBe(h1.publicKey);
    const status = await lab.sluiceOk('h2', 'status');
    for (const h of ['h1', 'h2']) expect(status).toMatch(new RegExp(`^${h}\\s+alive\\s.*\\swireguard:wireguard-go\\s`, 'm'));
  });

  it('enforces policy across hosts as without encryption: the client gets in, another container does not', async () => {
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(file, WEB_FROM_CLIENT);
    await lab.sluiceOk('h1', 'policy', 'apply', '-f', file);
    await eventually(async () => expect(await connects(lab, 'h1', 'other', ip.web2!)).toBe('timed out'));
    expect(await connects(lab, 'h1', 'client', ip.web2!)).toBe('ok');
    await lab.sluiceOk('h1', 'policy', 'rm', 'web-from-client');
    await eventually(async () => expect(await connects(lab, 'h1', 'other', ip.web2!)).toBe('ok'));
  });

  it('adds a host that joins later as a peer everywhere', async () => {
    await lab.agentStart('h3', ...AGENT_FLAGS);
    await lab.dockerOk('h3', 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
    await web('h3', 'web3');
    expect(await fetchFrom(lab, 'h1', 'client', ip.web3!, 80, 5)).toEqual({ reach: 'ok', page: 'hello from h3\n' });
    const h3 = await wg('h3');
    await eventually(async () => expect((await wg('h1')).peers.get(h3.publicKey)).toBe(await blocksOf('h3')));
    expect((await wg('h2')).peers.get(h3.publicKey)).toBe(await blocksOf('h3'));
  });

  it('refuses a host that runs without encryption: nothing reaches it from an encrypted host, in the clear or at all, and the logs say why', async () => {
    await restartAgent('h3', '--encryption', 'none');
    await eventually(async () => expect(await connects(lab, 'h1', 'client', ip.web3!)).toBe('timed out'));
    const seen = await fetchCaptured('h3', ip.web3!);
    expect(seen.page).toBe('');
    expect(seen.clear).toBe(false);
    expect(await lab.sluiceOk('h1', 'status')).toMatch(/^h3\s+alive\s.*\snone\s/m);
    expect(readFileSync('/run/sluice-lab/wg3/h1/agent.log', 'utf8')).toMatch(
      /refusing traffic with node\(s\) h3 \(--encryption none\): this host runs --encryption wireguard/,
    );
    // And back with encryption, it is a peer again.
    await restartAgent('h3');
    await eventually(async () => expect(await connects(lab, 'h1', 'client', ip.web3!)).toBe('ok'));
  });

  it('rolls a host\'s key on SIGUSR2: peers take the new key and traffic flows again', async () => {
    const before = (await wg('h2')).publicKey;
    const pinging = lab.docker('h1', 'exec', 'client', 'ping', '-c', '60', '-i', '0.25', '-W', '1', ip.web2!);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    process.kill((await lab.agent('h2')).pid, 'SIGUSR2');
    const after = await (async () => {
      let key = before;
      await eventually(async () => {
        key = (await wg('h2')).publicKey;
        expect(key).not.toBe(before);
      });
      return key;
    })();
    await eventually(async () => expect([...(await wg('h1')).peers.keys()]).toContain(after));
    expect([...(await wg('h1')).peers.keys()]).not.toContain(before);
    // The ping that ran through the rotation got answers after it too: the last one is answered.
    const result = await pinging;
    expect(result.stdout).toMatch(/seq=59 ttl=/);
    expect(await fetchFrom(lab, 'h1', 'client', ip.web2!, 80, 5, { path: 'secret.txt' })).toEqual({ reach: 'ok', page: `${SECRET}\n` });
  });

  it('removes the peer of a host that died once it is reclaimed', async () => {
    const h3 = (await wg('h3')).publicKey;
    expect([...(await wg('h1')).peers.keys()]).toContain(h3);
    await lab.agentStop('h3', 'KILL');
    await lab.dockerdStop('h3', 'KILL');
    // Its liveness lease runs out (30 s), then the grace period (1 s): a survivor reclaims it.
    await eventually(async () => expect([...(await wg('h1')).peers.keys()]).not.toContain(h3), 90_000);
    expect([...(await wg('h2')).peers.keys()]).not.toContain(h3);
  });

  it('(positive control) shows the same page in the clear on the underlay once encryption is off', async () => {
    for (const h of ['h1', 'h2']) await restartAgent(h, '--encryption', 'none');
    await eventually(async () => expect(await connects(lab, 'h1', 'client', ip.web2!)).toBe('ok'));
    const seen = await fetchCaptured('h1', ip.web2!);
    expect(seen.page).toBe(`${SECRET}\n`);
    expect(seen.clear).toBe(true);
    expect(seen.wireguardPackets).toBe(0);
  });
});
