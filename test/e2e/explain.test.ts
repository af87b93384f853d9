// `sluice policy explain` and `policy apply --dry-run` against real Docker on
// two hosts: what they say is what a real connection finds.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually } from '../helpers/eventually';
import { connects as probe } from '../helpers/probe';

jest.setTimeout(900_000);

const NET = 'appnet';
const PORTS = [80, 8080];
/** Container, host, labels: every one serves on both PORTS. */
const CONTAINERS: [string, string, string[]][] = [
  ['web1', 'h1', ['role=web']],
  ['web2', 'h2', ['role=web', 'tier=front']],
  ['db', 'h2', ['role=db']],
  ['client', 'h1', ['role=client']],
];

/** Ingress with ports, an egress deny, and order deciding between a deny and an allow. */
const FIRST = `
kind: NetworkPolicy
name: web-in
selector: role == 'web'
order: 100
ingress:
  - action: allow
    protocol: tcp
    from: role in {'client', 'web'}
    ports: [80]
---
kind: NetworkPolicy
name: db-in
selector: role == 'db'
ingress:
  - action: allow
    protocol: tcp
    from: role == 'web'
---
kind: NetworkPolicy
name: client-out
selector: role == 'client'
order: 10
egress:
  - action: deny
    protocol: tcp
    to: has(tier)
    ports: [80]
  - action: allow
`;

/** Opens web to 8080 from everyone, ahead of web-in, and lifts client's egress deny. */
const SECOND = `
kind: NetworkPolicy
name: web-8080
selector: role == 'web'
order: 50
ingress:
  - action: allow
    protocol: tcp
    ports: [8080]
---
kind: NetworkPolicy
name: client-out
selector: role == 'client'
order: 10
egress:
  - action: allow
`;

interface Pair {
  from: string;
  to: string;
  port: number;
}

describe('policy explain and dry-run on two hosts', () => {
  let lab: Lab;
  let dir: string;
  const host: Record<string, string> = {};
  const ip: Record<string, string> = {};
  const pairs: Pair[] = CONTAINERS.flatMap(([from]) => CONTAINERS.flatMap(([to]) => (from === to ? [] : PORTS.map((port) => ({ from, to, port })))));

  function file(yaml: string): string {
    const name = path.join(dir, `policy-${Date.now()}-${Math.random()}.yaml`);
    writeFileSync(name, yaml);
    return name;
  }

  /** A real probe: allowed if it got the page, denied if it timed out (a drop); anything else fails the test. */
  async function connects({ from, to, port }: Pair): Promise<'allow' | 'deny'> {
    const reach = await probe(lab, host[from]!, from, ip[to]!, port);
    if (reach === 'ok') return 'allow';
    if (reach === 'timed out') return 'deny';
    throw new Error(`probe ${from} → ${to}:${port}: ${reach}`);
  }

  async function explained({ from, to, port }: Pair): Promise<'allow' | 'deny'> {
    const r = await lab.sluice('h1', 'policy', 'explain', from, to, '--port', String(port), '-o', 'json');
    expect(r.stderr).toBe('');
    return (JSON.parse(r.stdout) as { verdict: 'allow' | 'deny' }).verdict;
  }

  /** Every pair and port as `verdict` finds it. */
  async function all(verdict: (p: Pair) => Promise<'allow' | 'deny'>): Promise<string[]> {
    const out: string[] = [];
    for (const p of pairs) out.push(`${p.from}->${p.to}:${p.port} ${await verdict(p)}`);
    return out;
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-explain-'));
    lab = await Lab.up({ name: 'explain', hosts: 2 });
    for (const h of ['h1', 'h2']) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', NET);
    }
    for (const [name, h, labels] of CONTAINERS) {
      await lab.dockerOk(h, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE,
        'sh', '-c', 'httpd -p 8080 -h /www; exec httpd -f -p 80 -h /www');
      host[name] = h;
      ip[name] = await lab.containerIp(h, name);
    }
    // Labels are learned from Docker events: wait until status shows every container with its labels.
    await eventually(async () => {
      const status = (await lab.sluice('h1', 'status')).stdout;
      for (const [name] of CONTAINERS) expect(status).toMatch(new RegExp(`^${name}\\s.*role=`, 'm'));
    }, 30_000, 500);
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('explains every pair and port as a real connection finds it', async () => {
    expect((await lab.sluice('h1', 'policy', 'apply', '-f', file(FIRST))).code).toBe(0);
    const expected = await all(explained);
    // Positive and negative controls: the policies allow some pairs and deny others.
    expect(expected.filter((v) => v.endsWith('allow')).length).toBeGreaterThan(0);
    expect(expected.filter((v) => v.endsWith('deny')).length).toBeGreaterThan(0);
    await eventually(async () => expect(await all(connects)).toEqual(expected), 60_000, 1000);
  });

  it('predicts with --dry-run exactly the pairs that flip when the file is applied', async () => {
    const second = file(SECOND);
    const before = await all(connects);
    const dry = await lab.sluice('h1', 'policy', 'apply', '--dry-run', '-f', second, '-o', 'json');
    expect(dry.code).toBe(0);
    const { changes } = JSON.parse(dry.stdout) as { changes: { from: string; to: string; protocol: string; ports?: (number | string)[]; after: string }[] };
    expect(await all(connects)).toEqual(before);
    const covers = (ports: (number | string)[] | undefined, port: number): boolean =>
      ports === undefined ||
      ports.some((p) => {
        const [first, last] = String(p).split('-').map(Number);
        return port >= first! && port <= (last ?? first)!;
      });
    const predicted = pairs
      .filter((p) => changes.some((c) => c.from === p.from && c.to === p.to && c.protocol === 'tcp' && covers(c.ports, p.port)))
      .map((p) => `${p.from}->${p.to}:${p.port}`);
    expect(predicted.length).toBeGreaterThan(0);
    expect((await lab.sluice('h1', 'policy', 'apply', '-f', second)).code).toBe(0);
    await eventually(async () => {
      const after = await all(connects);
      const flipped = pairs.filter((_, i) => after[i] !== before[i]).map((p) => `${p.from}->${p.to}:${p.port}`);
      expect(flipped).toEqual(predicted);
    }, 60_000, 1000);
    expect(await all(explained)).toEqual(await all(connects));
  });
});
