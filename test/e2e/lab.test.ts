// The lab itself (no agents): hosts come up with a working dockerd and the test image, reach each
// other over the underlay, IPv4 and IPv6 (directly, or through the router in the routed topology), and `down`
// leaves nothing behind.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { eventually } from '../helpers/eventually';
import { Lab, TEST_IMAGE } from '../helpers/lab';

jest.setTimeout(240_000);

function netnsNames(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

/** Processes whose command line names the lab's run directory (dockerd, containerd, etcd, agents). */
function labProcesses(name: string): string[] {
  const needle = `/run/sluice-lab/${name}/`;
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // a zombie waiting for init is not running
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) found.push(`${pid} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function labMounts(name: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/sluice-lab/${name}`) || l.includes(` /run/netns/sluice-${name}-`));
}

function expectGone(name: string): void {
  expect(netnsNames().filter((n) => n.startsWith(`sluice-${name}-`))).toEqual([]);
  expect(labProcesses(name)).toEqual([]);
  expect(labMounts(name)).toEqual([]);
  expect(fs.existsSync(`/run/sluice-lab/${name}`)).toBe(false);
  expect(fs.existsSync(`/var/lib/sluice-lab/${name}`)).toBe(false);
}

describe('lab, flat topology', () => {
  const name = 'e2e-lab-flat';
  let lab: Lab | undefined;

  beforeAll(async () => {
    lab = await Lab.up({ name, hosts: 2, topology: 'flat', agent: false });
  });

  afterAll(async () => {
    await Lab.down(name);
  });

  test('every host has its own dockerd', async () => {
    const ids = new Set<string>();
    for (const h of lab!.hosts) {
      const info = await lab!.dockerOk(h, 'info', '--format', '{{.ID}} {{.ServerVersion}}');
      expect(info).toMatch(/^\S+ \d+\.\d+/);
      ids.add(info.split(' ')[0]!);
    }
    expect(ids.size).toBe(2);
  });

  test('the test image exists on every host and serves the host name', async () => {
    for (const h of lab!.hosts) {
      await lab!.dockerOk(h, 'image', 'inspect', TEST_IMAGE);
      const page = await lab!.dockerOk(h, 'run', '--rm', '--network', 'none', TEST_IMAGE, 'cat', '/www/index.html');
      expect(page).toContain(h);
    }
  });

  test('h1 reaches h2 over the underlay, on-link', async () => {
    const ip2 = await lab!.hostIp('h2');
    expect(ip2).toMatch(/^10\.250\.0\.\d+$/);
    await lab!.execOk('h1', ['ping', '-c1', '-W2', ip2]);
    expect(await lab!.execOk('h1', ['ip', 'route', 'get', ip2])).not.toContain(' via ');
  });

  test('h1 reaches h2 over the IPv6 underlay, on-link; an address no host has does not answer', async () => {
    const ip6 = await lab!.hostIp6('h2');
    expect(ip6).toBe('fd00:250::12');
    await lab!.execOk('h1', ['ping', '-c1', '-W2', ip6]);
    expect(await lab!.execOk('h1', ['ip', '-6', 'route', 'get', ip6])).not.toContain(' via ');
    expect((await lab!.exec('h1', ['ping', '-c1', '-W2', 'fd00:250::ff'])).code).not.toBe(0);
  });

  test('etcd answers from every host', async () => {
    const endpoint = await lab!.etcdEndpoint();
    const hostPort = endpoint.replace(/^etcd:\/\//, '');
    for (const h of lab!.hosts) {
      const out = await lab!.execOk(h, ['timeout', '3', 'busybox', 'wget', '-q', '-O-', `http://${hostPort}/health`]);
      expect(out).toContain('"health":"true"');
    }
  });

  test('etcd and dockerd restart in place', async () => {
    await lab!.etcdStop();
    expect(await lab!.status()).toMatch(/etcd .*STOPPED/);
    await lab!.etcdStart();
    const before = await lab!.dockerOk('h2', 'info', '--format', '{{.ID}}');
    await lab!.dockerdRestart('h2');
    expect(await lab!.dockerOk('h2', 'info', '--format', '{{.ID}}')).toBe(before);
  });

  test('an agent started again after a crash is reported running, not exited', async () => {
    await lab!.agentStart('h1');
    const pidfile = `/run/sluice-lab/${name}/h1/agent.pid`;
    // A crash: the agent dies without the lab's knowledge, its pidfile left behind.
    process.kill(Number(fs.readFileSync(pidfile, 'utf8')), 'SIGKILL');
    await eventually(async () => expect(await lab!.status()).toMatch(/h1 .* agent -/), 10_000, 100);
    await lab!.agentStart('h1');
    expect(await lab!.status()).toMatch(/h1 .* agent pid \d+/);
    await lab!.agentStop('h1');
  });

  test('down leaves no namespace, process or mount, and is safe twice', async () => {
    expect(labProcesses(name).length).toBeGreaterThanOrEqual(5); // etcd, 2 dockerd, 2 containerd
    await lab!.down();
    expectGone(name);
    await Lab.down(name);
    expectGone(name);
  });
});

describe('lab, routed topology', () => {
  const name = 'e2e-lab-routed';
  let lab: Lab | undefined;

  beforeAll(async () => {
    lab = await Lab.up({ name, hosts: 2, topology: 'routed', agent: false });
  });

  afterAll(async () => {
    await Lab.down(name);
  });

  test('hosts on different subnets reach each other through the router', async () => {
    const [ip1, ip2] = [await lab!.hostIp('h1'), await lab!.hostIp('h2')];
    expect(ip1.split('.').slice(0, 3)).not.toEqual(ip2.split('.').slice(0, 3));
    await lab!.execOk('h1', ['ping', '-c1', '-W2', ip2]);
    await lab!.execOk('h2', ['ping', '-c1', '-W2', ip1]);
    expect(await lab!.execOk('h1', ['ip', 'route', 'get', ip2])).toMatch(/ via 10\.250\.\d+\.1 /);
  });

  test('hosts on different subnets reach each other over IPv6 through the router, and nobody else', async () => {
    const [ip1, ip2] = [await lab!.hostIp6('h1'), await lab!.hostIp6('h2')];
    expect([ip1, ip2]).toEqual(['fd00:250:1::11', 'fd00:250:2::12']);
    await lab!.execOk('h1', ['ping', '-c1', '-W2', ip2]);
    await lab!.execOk('h2', ['ping', '-c1', '-W2', ip1]);
    expect(await lab!.execOk('h1', ['ip', '-6', 'route', 'get', ip2])).toContain(' via fd00:250:1::1 ');
    // Routed like h2's address, but no host has it.
    expect((await lab!.exec('h1', ['ping', '-c1', '-W2', 'fd00:250:2::ff'])).code).not.toBe(0);
  });

  test('a second up of the same name replaces the first', async () => {
    lab = await Lab.up({ name, hosts: 2, topology: 'routed', agent: false });
    await lab.dockerOk('h2', 'info', '--format', '{{.ID}}');
  });

  test('down cleans up', async () => {
    await lab!.down();
    expectGone(name);
  });
});
