// The store is untrusted input (issue 7): garbage written straight into etcd under every key kind
// leaves every agent running, serving Docker and enforcing the policies that are still valid, and
// `sluice status` names what the agents ignore.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { connects } from '../helpers/probe';
import { WEB_FROM_CLIENT } from '../helpers/policies';

jest.setTimeout(600_000);

const NET = 'appnet';
const SUBNET = '10.96.0.0/16';


/** Garbage per key kind: not JSON, JSON of the wrong shape, wrong types, bad addresses, a bad policy. */
const GARBAGE: [string, string][] = [
  ['networks/10.201.0.0-16', 'not json{'],
  ['networks/10.202.0.0-16', '{"key":"10.202.0.0-16","subnet":"10.202.0.0/16","blockSize":"26","gateway":"10.202.0.1"}'],
  ['nodes/ghost', '[]'],
  ['nodes/h9', '{"name":"h9","ip":"999.1.1.1","backend":"host-gw","version":"x","lastSeen":"now"}'],
  ['alive/ghost', '\u0000\u0001'],
  ['blocks/10.96.0.0-16/10.96.250.0-26', '{"network":"10.96.0.0-16","block":"10.96.250.0/26","node":42}'],
  ['addresses/10.96.0.0-16/10.96.250.0-26/10.96.250.7', 'null'],
  ['endpoints/h1/' + 'f'.repeat(64), '{"id":"x","network":"10.96.0.0-16","node":"h1","address":"10.96.0.9\\n-j ACCEPT","labels":{},"ports":[]}'],
  ['endpoints/h2/' + 'e'.repeat(64), 'not json{'],
  ['dockernets/h1/' + 'd'.repeat(64), '{"nested":true}'],
  ['policies/evil', "kind: NetworkPolicy\nname: evil\nselector: \"((((\"\ningress: []\n"],
  ['policies/bomb', 'a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n'],
  ['pool-guard', '{{{'],
];

describe('garbage in the store', () => {
  let lab: Lab;
  let dir: string;
  let web: string;

  /** Puts a raw value under /sluice/v1/KEY through etcd's JSON gateway, from host h1 (the test process cannot reach etcd). */
  async function putRaw(key: string, value: string): Promise<void> {
    const etcd = (await lab.etcdEndpoint()).replace(/^etcd:\/\//, '');
    const body = JSON.stringify({ key: Buffer.from(`/sluice/v1/${key}`).toString('base64'), value: Buffer.from(value).toString('base64') });
    const reply = await lab.execOk('h1', ['wget', '-q', '-O-', '--post-data', body, `http://${etcd}/v3/kv/put`]);
    expect(reply).toContain('revision');
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-garbage-'));
    lab = await Lab.up({ name: 'garbage', hosts: 2 });
    for (const h of lab.hosts) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
    }
    await lab.dockerOk('h2', 'run', '-d', '--init', '--name', 'web', '--label', 'role=web', '--net', NET, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    web = await lab.containerIp('h2', 'web');
    for (const role of ['client', 'intruder']) {
      await lab.dockerOk('h1', 'run', '-d', '--init', '--name', role, '--label', `role=${role}`, '--net', NET, TEST_IMAGE, 'sleep', '3600');
    }
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(file, WEB_FROM_CLIENT);
    await lab.sluiceOk('h1', 'policy', 'apply', '-f', file);
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves every agent running, serving and enforcing, and status names the bad keys', async () => {
    // Before: the policy holds (a positive control and a denial from the same host).
    expect(await connects(lab, 'h1', 'client', web)).toBe('ok');
    expect(await connects(lab, 'h1', 'intruder', web)).toBe('timed out');
    const agentsBefore = await Promise.all(lab.hosts.map((h) => lab.agent(h)));

    for (const [key, value] of GARBAGE) await putRaw(key, value);

    // The plugin still serves on both hosts: new containers get addresses and the policy covers them.
    await lab.dockerOk('h2', 'run', '-d', '--init', '--name', 'client2', '--label', 'role=client', '--net', NET, TEST_IMAGE, 'sleep', '3600');
    await lab.dockerOk('h1', 'run', '-d', '--init', '--name', 'intruder2', '--label', 'role=intruder', '--net', NET, TEST_IMAGE, 'sleep', '3600');
    expect(await connects(lab, 'h2', 'client2', web)).toBe('ok');
    expect(await connects(lab, 'h1', 'client', web)).toBe('ok');
    expect(await connects(lab, 'h1', 'intruder', web)).toBe('timed out');
    expect(await connects(lab, 'h1', 'intruder2', web)).toBe('timed out');

    // The same agents, never restarted.
    expect(await Promise.all(lab.hosts.map((h) => lab.agent(h)))).toEqual(agentsBefore);

    const status = await lab.sluiceOk('h1', 'status');
    expect(status).toContain('INVALID RECORDS');
    for (const key of ['networks/10.201.0.0-16', 'nodes/ghost', `endpoints/h2/${'e'.repeat(64)}`, 'policies/evil']) {
      expect(status).toContain(`/sluice/v1/${key}`);
    }
  });
});
