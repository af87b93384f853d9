import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { publicKeyOf } from '../../../src/encryption/keys';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { eventually, useCluster, type TestHost, type TestHostOptions } from '../../helpers/host';

const SUBNET = '10.96.0.0/16';

describe('Agent with --encryption wireguard', () => {
  const { start } = useCluster();
  let dir: string;
  let log: jest.SpyInstance;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-wg-'));
    log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const keyFile = (host: string): string => path.join(dir, host, 'wireguard.key');
  const encrypted = (name: string, ip: string, opts: TestHostOptions = {}): Promise<TestHost> =>
    start(name, ip, { ...opts, onLink: ['192.0.2.1', '192.0.2.2', '192.0.2.3'], flags: { encryption: 'wireguard', 'wireguard-key-file': keyFile(name), ...opts.flags } });

  async function claimBlock(host: TestHost): Promise<string> {
    const { poolId } = await host.ipam.requestPool({ pool: SUBNET, options: {}, v6: false });
    await host.ipam.requestAddress({ poolId });
    return (await host.registry.listBlocks(poolId)).find((b) => b.node === host.name)!.block;
  }
  const publicKey = (host: string): string => publicKeyOf(readFileSync(keyFile(host), 'utf8').trim());

  it('makes a key on first start, kept 0600, publishes its public key and which WireGuard runs, and keeps it across restarts', async () => {
    const h1 = await encrypted('h1', '192.0.2.1', { dataplane: new RecordingDataplane({ wireguard: 'wireguard-go' }) });
    expect((statSync(keyFile('h1')).mode & 0o777).toString(8)).toBe('600');
    const record = (await h1.registry.getNode('h1'))!.record;
    expect(record.wireguard).toEqual({ publicKey: publicKey('h1'), port: 51820, implementation: 'wireguard-go' });
    expect(log.mock.calls.flat()).toContain(`sluice agent: encryption: WireGuard (wireguard-go) on sluice.wg, port 51820, public key ${publicKey('h1')}`);
    expect(h1.dataplane.wireguardDevice).toEqual({ implementation: 'wireguard-go', mtu: 1440 });
    expect(h1.agent.mtu).toBe(1440);
    await h1.agent.stop();
    const again = await encrypted('h1', '192.0.2.1');
    expect((await again.registry.getNode('h1'))!.record.wireguard?.publicKey).toBe(record.wireguard!.publicKey);
  });

  it('peers with every other encrypted host, allowed its blocks, and routes them through the device', async () => {
    const h1 = await encrypted('h1', '192.0.2.1');
    const h2 = await encrypted('h2', '192.0.2.2', { flags: { 'wireguard-port': '51999' } });
    const block2 = await claimBlock(h2);
    await eventually(() =>
      expect(h1.dataplane.wireguard?.peers).toEqual([{ publicKey: publicKey('h2'), endpoint: '192.0.2.2:51999', allowedIps: [block2] }]),
    );
    expect(h1.dataplane.wireguard?.privateKey).toBe(readFileSync(keyFile('h1'), 'utf8').trim());
    expect(h1.dataplane.routes.get(block2)).toEqual({ kind: 'wireguard', block: block2 });
    const block1 = await claimBlock(h1);
    await eventually(() => expect(h2.dataplane.wireguard?.peers.map((p) => p.allowedIps)).toEqual([[block1]]));
  });

  it('refuses a plain host both ways: its blocks blackholed here, ours blackholed there, and says so', async () => {
    const h1 = await encrypted('h1', '192.0.2.1');
    const plain = await start('h3', '192.0.2.3', { onLink: ['192.0.2.1'] });
    const block3 = await claimBlock(plain);
    const block1 = await claimBlock(h1);
    await eventually(() => expect(h1.dataplane.routes.get(block3)).toEqual({ kind: 'blackhole', block: block3 }));
    await eventually(() => expect(plain.dataplane.routes.get(block1)).toEqual({ kind: 'blackhole', block: block1 }));
    expect(h1.dataplane.wireguard?.peers ?? []).toEqual([]);
    expect(log.mock.calls.flat().join('\n')).toContain(
      'refusing traffic with node(s) h3 (--encryption none): this host runs --encryption wireguard; every host of a cluster must run the same',
    );
    expect(log.mock.calls.flat().join('\n')).toContain('refusing traffic with node(s) h1 (--encryption wireguard): this host runs --encryption none');
  });

  it('drops the peer of a dead host once it is reclaimed', async () => {
    const h1 = await encrypted('h1', '192.0.2.1');
    const h2 = await encrypted('h2', '192.0.2.2');
    await claimBlock(h2);
    await eventually(() => expect(h1.dataplane.wireguard?.peers).toHaveLength(1));
    await h2.agent.stop();
    const node = (await h1.registry.getNode('h2'))!;
    await h1.registry.replaceNode({ ...node.record, reclaimed: { at: new Date().toISOString(), by: 'h1' } }, node.modRevision);
    await eventually(() => expect(h1.dataplane.wireguard?.peers).toEqual([]));
  });

  it('rotates its key: a new key in the file and on the device, the new public key published, peers switched to it', async () => {
    const h1 = await encrypted('h1', '192.0.2.1');
    const h2 = await encrypted('h2', '192.0.2.2');
    await claimBlock(h1);
    const before = publicKey('h1');
    await eventually(() => expect(h2.dataplane.wireguard?.peers.map((p) => p.publicKey)).toEqual([before]));
    await h1.agent.rotateWireguardKey();
    const after = publicKey('h1');
    expect(after).not.toBe(before);
    expect(publicKeyOf(h1.dataplane.wireguard!.privateKey)).toBe(after);
    expect((await h1.registry.getNode('h1'))!.record.wireguard?.publicKey).toBe(after);
    await eventually(() => expect(h2.dataplane.wireguard?.peers.map((p) => p.publicKey)).toEqual([after]));
  });

  it('refuses to start with a key file that holds no key, and leaves the file alone', async () => {
    const file = path.join(dir, 'bad.key');
    writeFileSync(file, 'garbage\n');
    await expect(start('h1', '192.0.2.1', { flags: { encryption: 'wireguard', 'wireguard-key-file': file } })).rejects.toThrow(
      `--wireguard-key-file ${file} holds no WireGuard private key`,
    );
    expect(readFileSync(file, 'utf8')).toBe('garbage\n');
  });

  it('without encryption: no device (one an encrypted run left is removed), no key, no rotation', async () => {
    const dataplane = new RecordingDataplane();
    await (await encrypted('h1', '192.0.2.1', { dataplane })).agent.stop();
    expect(dataplane.wireguardDevice).toBeDefined();
    const logged = log.mock.calls.length;
    const h1 = await start('h1', '192.0.2.1', { dataplane });
    expect(h1.dataplane.wireguardDevice).toBeUndefined();
    expect((await h1.registry.getNode('h1'))!.record.wireguard).toBeUndefined();
    expect(log.mock.calls.slice(logged).flat().join('\n')).not.toContain('WireGuard');
    await expect(h1.agent.rotateWireguardKey()).rejects.toThrow('this agent runs --encryption none: there is no WireGuard key to rotate');
  });
});
