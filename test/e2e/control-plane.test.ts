// The control plane is closed to containers: a container whose policy allows all egress still
// cannot reach etcd (and so cannot rewrite policy), while it reaches what that policy allows and
// the hosts themselves keep using etcd.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { fetchFrom, pings } from '../helpers/probe';

jest.setTimeout(600_000);

const NET = 'appnet';

const ALLOW_ALL = `
kind: NetworkPolicy
name: allow-all
selector: all()
egress: [{action: allow}]
ingress: [{action: allow}]
`;

describe('the control plane, from a container', () => {
  let lab: Lab;
  let dir: string;
  let etcd: string;
  let webIp: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-control-plane-'));
    lab = await Lab.up({ name: 'ctlplane', hosts: 2 });
    etcd = (await lab.etcdEndpoint()).replace(/^etcd:\/\//, '');
    for (const h of lab.hosts) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', NET);
    }
    await lab.dockerOk('h2', 'run', '-d', '--init', '--name', 'web', '--net', NET, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    webIp = await lab.containerIp('h2', 'web');
    await lab.dockerOk('h1', 'run', '-d', '--init', '--name', 'box', '--net', NET, TEST_IMAGE, 'sleep', '3600');
    const file = path.join(dir, 'allow-all.yaml');
    writeFileSync(file, ALLOW_ALL);
    const applied = await lab.sluice('h1', 'policy', 'apply', '-f', file);
    expect(applied.stdout).toContain('policy allow-all applied');
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('cannot reach etcd even though its policy allows all egress, while it reaches what the policy allows', async () => {
    const [etcdIp, etcdPort] = etcd.split(':');
    expect((await fetchFrom(lab, 'h1', 'box', webIp)).reach).toBe('ok');
    expect(await pings(lab, 'h1', 'box', etcdIp!, { timeoutS: 2 })).toBe('ok');
    expect((await fetchFrom(lab, 'h1', 'box', etcdIp!, Number(etcdPort), 3, { path: 'version' })).reach).toBe('timed out');
  });

  it('cannot delete a policy through etcd\'s JSON gateway, and the hosts still use etcd', async () => {
    const key = Buffer.from('/sluice/v1/policies/allow-all').toString('base64');
    const [etcdIp, etcdPort] = etcd.split(':');
    const deleted = await fetchFrom(lab, 'h1', 'box', etcdIp!, Number(etcdPort), 3, { path: 'v3/kv/deleterange', postData: JSON.stringify({ key }) });
    expect(deleted.reach).toBe('timed out');
    for (const h of lab.hosts) {
      expect((await lab.sluice(h, 'policy', 'ls')).stdout).toContain('allow-all');
    }
    expect((await lab.exec('h1', ['wget', '-q', '-O-', `http://${etcd}/version`])).stdout).toContain('etcdserver');
  });
});
