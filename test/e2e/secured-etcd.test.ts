// Two hosts whose agents and CLI reach etcd over TLS with client certificates, or log in to an
// etcd with auth on as a user limited to /sluice/: the cluster works as on a plain etcd, and a
// CLI without the credentials is refused with an error naming what is missing.
import * as path from 'node:path';
import { eventually as retry } from '../helpers/eventually';
import { Lab, TEST_IMAGE, type LabOptions } from '../helpers/lab';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 30_000) => retry(check, timeoutMs, 250);
const NET = 'securenet';
const SLUICE_BIN = path.join(__dirname, '../../bin/sluice');

describe.each([
  { name: 'etcdtls', options: { etcdTls: true }, refusal: /dropped a plain connection: it probably wants TLS: pass --etcd-ca/ },
  { name: 'etcdauth', options: { etcdAuth: true }, refusal: /requires a login: pass --etcd-user NAME and a password/ },
] satisfies { name: string; options: LabOptions; refusal: RegExp }[])('a 2-host cluster on a secured etcd ($name)', ({ name, options, refusal }) => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name, hosts: 2, ...options });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('defines a network with the CLI, and containers on h1 and h2 reach each other', async () => {
    const created = await lab.sluice('h1', 'network', 'create', NET, '--subnet', '10.97.0.0/16');
    expect({ code: created.code, stderr: created.stderr.replace(/.*DEP0123.*\n.*\n/, '') }).toEqual({ code: 0, stderr: '' });
    for (const h of lab.hosts) {
      await eventually(async () => expect(await lab.dockerOk(h, 'network', 'ls', '--format', '{{.Name}}')).toContain(NET));
    }
    await lab.dockerOk('h2', 'run', '-d', '--init', '--name', 'web', '--net', NET, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    await lab.dockerOk('h1', 'run', '-d', '--init', '--name', 'client', '--net', NET, TEST_IMAGE, 'sleep', '3600');
    const ip = await lab.containerIp('h2', 'web');
    await eventually(async () => {
      expect((await lab.docker('h1', 'exec', 'client', 'ping', '-c1', '-W2', ip)).code).toBe(0);
    });
    expect((await lab.docker('h1', 'exec', 'client', 'timeout', '5', 'wget', '-q', '-O-', `http://${ip}/`)).stdout).toContain('h2');
    const status = (await lab.sluice('h2', 'status')).stdout;
    expect(status).toMatch(/^h1\s+alive/m);
    expect(status).toMatch(/^h2\s+alive/m);
    expect(status).toMatch(/^web\s+securenet\s+h2/m);
  });

  it('refuses a CLI without the credentials, naming what is missing', async () => {
    const r = await lab.exec('h1', [SLUICE_BIN, 'network', 'ls', '--store', await lab.etcdEndpoint()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(refusal);
  });
});
