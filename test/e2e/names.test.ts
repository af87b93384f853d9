// Container names across hosts: every agent serves the cluster's names on
// 169.254.53.53, where each host's dockerd (--dns) sends what its embedded DNS
// does not know. Scoped per network, following starts, removals and renames,
// reachable under an egress default deny, forwarding the rest upstream.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { eventually as retry } from '../helpers/eventually';
import { LAB_DNS_ADDRESS as DNS_ADDRESS, Lab, TEST_IMAGE } from '../helpers/lab';
import { fetchFrom, lookup } from '../helpers/probe';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 20_000) => retry(check, timeoutMs, 250);
const UPSTREAM_PORT = 5353;

describe('container names across two hosts', () => {
  let lab: Lab;
  let dir: string;
  let dnsmasqPid: string | undefined;

  const run = (host: string, name: string, ...args: string[]) =>
    lab.dockerOk(host, 'run', '-d', '--init', '--name', name, ...args, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');

  beforeAll(async () => {
    lab = await Lab.up({ name: 'names', hosts: 2 });
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-names-'));
    for (const h of lab.hosts) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', 'appnet');
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.97.0.0/16', 'othernet');
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--internal', '--subnet', '10.98.0.0/16', 'quietnet');
    }
    // An upstream on the underlay that knows one made-up name and refuses to know any other.
    const upstreamIp = new URL((await lab.etcdEndpoint()).replace(/^etcd:/, 'http:')).hostname;
    const pidFile = path.join(dir, 'dnsmasq.pid');
    await lab.execOk('underlay', [
      'dnsmasq', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${upstreamIp}`, `--port=${UPSTREAM_PORT}`,
      '--address=/outside.test/192.0.2.99', '--local=/#/', `--pid-file=${pidFile}`, '--user=root',
    ]);
    dnsmasqPid = (await lab.execOk('underlay', ['cat', pidFile])).trim();
    for (const h of lab.hosts) {
      await lab.agentStop(h);
      await lab.agentStart(h, '--dns-upstream', `${upstreamIp}:${UPSTREAM_PORT}`);
    }
    await run('h1', 'client', '--net', 'appnet');
  });
  afterAll(async () => {
    if (dnsmasqPid) await lab.exec('underlay', ['kill', dnsmasqPid]);
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('resolves a container on the other host by its name and its --network-alias, and reaches it by name', async () => {
    await run('h2', 'web2', '--net', 'appnet', '--network-alias', 'api');
    const ip = await lab.containerIp('h2', 'web2');
    await eventually(async () => expect({ name: await lookup(lab, 'h1', 'client', 'web2'), alias: await lookup(lab, 'h1', 'client', 'api') }).toEqual({ name: [ip], alias: [ip] }));
    expect(await fetchFrom(lab, 'h1', 'client', 'web2', 80, 5)).toEqual({ reach: 'ok', page: 'hello from h2\n' });
  });

  it('answers an alias shared by containers on both hosts with both addresses', async () => {
    await run('h1', 'shared1', '--net', 'appnet', '--network-alias', 'shared');
    await run('h2', 'shared2', '--net', 'appnet', '--network-alias', 'shared');
    const ips = [await lab.containerIp('h1', 'shared1'), await lab.containerIp('h2', 'shared2')].sort();
    // Asked directly: dockerd's embedded DNS would answer a name it knows locally with its own containers only.
    await eventually(async () => expect(await lookup(lab, 'h1', 'client', 'shared', DNS_ADDRESS)).toEqual(ips));
  });

  it('keeps the names of another network invisible, while containers on it resolve them', async () => {
    await run('h2', 'hidden2', '--net', 'othernet');
    await run('h1', 'other1', '--net', 'othernet');
    const ip = await lab.containerIp('h2', 'hidden2');
    await eventually(async () => expect(await lookup(lab, 'h1', 'other1', 'hidden2')).toEqual([ip]));
    // Not answered: forwarded, and upstream knows no such name.
    expect(await lookup(lab, 'h1', 'client', 'hidden2')).toBe('NXDOMAIN');
    expect(await lookup(lab, 'h1', 'client', 'hidden2', DNS_ADDRESS)).toBe('NXDOMAIN');
  });

  it('stops resolving a removed container, and follows a renamed one', async () => {
    await run('h2', 'gone2', '--net', 'appnet');
    await run('h2', 'before2', '--net', 'appnet');
    const ip = await lab.containerIp('h2', 'before2');
    await eventually(async () => expect(Array.isArray(await lookup(lab, 'h1', 'client', 'gone2'))).toBe(true));
    await lab.dockerOk('h2', 'rm', '-f', 'gone2');
    await eventually(async () => expect(await lookup(lab, 'h1', 'client', 'gone2')).toBe('NXDOMAIN'));
    await eventually(async () => expect(await lookup(lab, 'h1', 'client', 'before2')).toEqual([ip]));
    await lab.dockerOk('h2', 'rename', 'before2', 'after2');
    await eventually(async () =>
      expect({ renamed: await lookup(lab, 'h1', 'client', 'after2'), old: await lookup(lab, 'h1', 'client', 'before2') }).toEqual({ renamed: [ip], old: 'NXDOMAIN' }),
    );
  });

  it('resolves names under an egress default deny that lets nothing else out', async () => {
    const file = path.join(dir, 'locked.yaml');
    writeFileSync(file, "kind: NetworkPolicy\nname: locked-egress\nselector: role == 'locked'\negress: []\n");
    await lab.sluiceOk('h1', 'policy', 'apply', '-f', file);
    await run('h1', 'locked', '--net', 'appnet', '--label', 'role=locked');
    const web2 = await lab.containerIp('h2', 'web2');
    expect(await lookup(lab, 'h1', 'locked', 'web2')).toEqual([web2]);
    expect(await lookup(lab, 'h1', 'locked', 'outside.test')).toEqual(['192.0.2.99']);
    // The positive control: the policy is in force, nothing but DNS gets out.
    expect((await fetchFrom(lab, 'h1', 'locked', web2)).reach).toBe('timed out');
    expect((await fetchFrom(lab, 'h1', 'client', web2)).reach).toBe('ok');
  });

  it('forwards names outside the cluster to --dns-upstream', async () => {
    expect(await lookup(lab, 'h1', 'client', 'outside.test')).toEqual(['192.0.2.99']);
    expect(await lookup(lab, 'h2', 'shared2', 'outside.test', DNS_ADDRESS)).toEqual(['192.0.2.99']);
  });

  it('resolves names on an --internal network (no gateway), and nothing outside the cluster', async () => {
    await run('h2', 'inner2', '--net', 'quietnet');
    await run('h1', 'inner1', '--net', 'quietnet');
    const ip = await lab.containerIp('h2', 'inner2');
    await eventually(async () => expect(await lookup(lab, 'h1', 'inner1', 'inner2')).toEqual([ip]));
    expect(await fetchFrom(lab, 'h1', 'inner1', 'inner2', 80, 5)).toEqual({ reach: 'ok', page: 'hello from h2\n' });
    // The test above is the positive control: the same name, asked from appnet, is answered by upstream.
    expect(await lookup(lab, 'h1', 'inner1', 'outside.test', DNS_ADDRESS)).toBe('REFUSED');
    expect(Array.isArray(await lookup(lab, 'h1', 'inner1', 'outside.test'))).toBe(false);
  });
});
