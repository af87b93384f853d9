// Label-based policy on real Docker across two hosts: who may talk to whom,
// enforced on every host, following policy changes and new containers live.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually as retry } from '../helpers/eventually';
import { connects as probeTcp, fetchesDuring, pings as probePing, secondsSinceBoot } from '../helpers/probe';
import { WEB_FROM_CLIENT } from '../helpers/policies';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 20_000) => retry(check, timeoutMs, 200);
const NET = 'appnet';


describe('label-based policy across two hosts', () => {
  let lab: Lab;
  let dir: string;
  const ip: Record<string, string> = {};

  /** Writes `yaml` where the CLI (in the host's mount namespace) can read it. */
  function policyFile(yaml: string): string {
    const file = path.join(dir, `policy-${Date.now()}-${Math.random()}.yaml`);
    writeFileSync(file, yaml);
    return file;
  }
  const apply = (yaml: string) => lab.sluiceOk('h1', 'policy', 'apply', '-f', policyFile(yaml));

  const connects = (host: string, from: string, to: string, port = 80) => probeTcp(lab, host, from, to, port);
  const pings = (host: string, from: string, to: string) => probePing(lab, host, from, to);

  /** A web server labelled `labels`, serving on 80 and 8080. */
  async function web(host: string, name: string, ...labels: string[]): Promise<void> {
    await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE,
      'sh', '-c', 'httpd -p 8080 -h /www; exec httpd -f -p 80 -h /www');
    ip[name] = await lab.containerIp(host, name);
  }

  async function box(host: string, name: string, ...labels: string[]): Promise<void> {
    await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE, 'sleep', '3600');
    ip[name] = await lab.containerIp(host, name);
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-policy-'));
    lab = await Lab.up({ name: 'policy', hosts: 2 });
    for (const h of ['h1', 'h2']) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', NET);
    }
    await web('h2', 'web', 'role=web');
    await box('h1', 'client', 'role=client');
    await box('h1', 'other', 'role=other');
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('learns every container\'s labels from Docker and shows them', async () => {
    const status = await lab.sluiceOk('h1', 'status');
    expect(status).toMatch(/client\s+10\.96\.0\.0\/16\s+h1\s+[\d.]+\s+role=client/);
    expect(status).toMatch(/web\s+10\.96\.0\.0\/16\s+h2\s+[\d.]+\s+role=web/);
  });

  it('lets everything on the network talk while no policy selects anyone', async () => {
    expect(await connects('h1', 'client', ip.web!)).toBe('ok');
    expect(await connects('h1', 'other', ip.web!, 8080)).toBe('ok');
  });

  it('refuses a policy file with a bad selector, naming the position, and applies nothing of it', async () => {
    const r = await lab.sluice('h1', 'policy', 'apply', '-f', policyFile(`${WEB_FROM_CLIENT}---\nkind: NetworkPolicy\nname: broken\nselector: role == \ningress: []\n`));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/document 2 \(name: broken\): selector: .*at column 8: expected a quoted string/);
    expect(await lab.sluiceOk('h1', 'policy', 'ls')).not.toContain('web-from-client');
  });

  it('allows client → web on TCP 80 only, across hosts, and refuses everyone else', async () => {
    expect(await apply(WEB_FROM_CLIENT)).toContain('policy web-from-client applied');
    await eventually(async () => expect(await connects('h1', 'other', ip.web!)).toBe('timed out'));
    expect(await connects('h1', 'client', ip.web!)).toBe('ok');
    expect(await connects('h1', 'client', ip.web!, 8080)).toBe('timed out');
    expect(await pings('h1', 'client', ip.web!)).toBe('timed out');
    expect(await pings('h1', 'client', ip.other!)).toBe('ok');
  });

  it('shows the policy with ls and get', async () => {
    expect(await lab.sluiceOk('h2', 'policy', 'ls')).toMatch(/web-from-client\s+1000\s+\*\s+role == 'web'/);
    expect(await lab.sluiceOk('h2', 'policy', 'get', 'web-from-client')).toContain("from: role == 'client'");
  });

  it('subjects a container started right after the policy to it on its very first connection', async () => {
    await box('h1', 'client2', 'role=client');
    expect(await connects('h1', 'client2', ip.web!)).toBe('ok');
    await box('h1', 'other2', 'role=other');
    expect(await connects('h1', 'other2', ip.web!)).toBe('timed out');
    expect(await pings('h1', 'other2', ip.client!)).toBe('ok');
    await web('h2', 'web2', 'role=web');
    expect(await connects('h1', 'client', ip.web2!)).toBe('ok');
    expect(await connects('h1', 'other', ip.web2!)).toBe('timed out');
  });

  it('enforces egress rules: a client limited to web:80 cannot reach anything else', async () => {
    await apply(`
kind: NetworkPolicy
name: client-egress
selector: role == 'client'
egress:
  - action: allow
    protocol: tcp
    to: role == 'web'
    ports: [80]
`);
    await eventually(async () => expect(await pings('h1', 'client', ip.other!)).toBe('timed out'));
    expect(await connects('h1', 'client', ip.web!)).toBe('ok');
    expect(await pings('h1', 'other', ip.client!)).toBe('ok'); // ingress to the client is untouched
    await lab.sluiceOk('h1', 'policy', 'rm', 'client-egress');
    await eventually(async () => expect(await pings('h1', 'client', ip.other!)).toBe('ok'));
  });

  it('follows a policy change on both hosts, and its removal', async () => {
    await apply(WEB_FROM_CLIENT.replace("from: role == 'client'", "from: role in {'client', 'other'}"));
    await eventually(async () => expect(await connects('h1', 'other', ip.web!)).toBe('ok'));
    await lab.sluiceOk('h1', 'policy', 'rm', 'web-from-client');
    await eventually(async () => expect(await connects('h1', 'other', ip.web!, 8080)).toBe('ok'));
    expect(await lab.sluiceOk('h1', 'policy', 'ls')).not.toContain('web-from-client');
  });

  it('keeps a container fail-closed while its labels cannot be learned, and opens it once they are', async () => {
    await apply(WEB_FROM_CLIENT);
    // An agent that cannot reach Docker's API cannot tell whose endpoint it plumbs.
    await lab.agentStop('h1');
    await lab.agentStart('h1', '--docker-host', 'unix:///run/sluice-nowhere.sock');
    await box('h1', 'blind', 'role=client');
    expect(await pings('h1', 'blind', ip.client!)).toBe('timed out');
    expect(await connects('h1', 'blind', ip.web!)).toBe('timed out');
    expect(await pings('h1', 'client', ip.blind!)).toBe('timed out');
    await lab.agentStop('h1');
    await lab.agentStart('h1');
    // The same probes, now answered: the drops above were the fail-closed rules, nothing else.
    await eventually(async () => expect(await connects('h1', 'blind', ip.web!)).toBe('ok'));
    expect(await pings('h1', 'blind', ip.client!)).toBe('ok');
    expect(await pings('h1', 'client', ip.blind!)).toBe('ok');
  });

  it('drops no allowed traffic and lets no denied connection through while an agent restarts', async () => {
    const before = await lab.agent('h2');
    const allowed = fetchesDuring(lab, 'h1', 'client', ip.web!, 100, 5);
    const denied = fetchesDuring(lab, 'h1', 'other', ip.web!, 30, 1);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // both probes under way
    await lab.agentStop('h2', 'KILL');
    await lab.agentStart('h2');
    const serving = secondsSinceBoot();
    const after = await lab.agent('h2');
    const [fetched, refused] = [await allowed, await denied];
    expect(fetched).toMatchObject({ ok: 100, timedOut: 0, errors: 0 });
    expect(refused).toMatchObject({ ok: 0, timedOut: 30, errors: 0 });
    // The restart happened while both probes ran: a new agent, started and serving inside both windows.
    expect(after.pid).not.toBe(before.pid);
    for (const window of [fetched, refused]) {
      expect(after.startedAt).toBeGreaterThan(window.from);
      expect(serving).toBeLessThan(window.to);
    }
  });

  it('repairs its chains when someone flushes them behind its back', async () => {
    await lab.execOk('h2', ['iptables', '-F', 'SLUICE-TO-WL']);
    await eventually(async () => expect(await lab.execOk('h2', ['iptables', '-S', 'SLUICE-TO-WL'])).toContain('sluice-local'), 30_000);
    expect(await connects('h1', 'other', ip.web!)).toBe('timed out');
    expect(await connects('h1', 'client', ip.web!)).toBe('ok');
  });
});
