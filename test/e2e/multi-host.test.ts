// One network across several Docker hosts coordinated through etcd: host-gw
// between hosts on one link, VXLAN across a router, and the failures users hit.
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually as retry } from '../helpers/eventually';
import { fetchFrom, pings, secondsSinceBoot, windowed } from '../helpers/probe';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 20_000) => retry(check, timeoutMs, 250);
const SUBNET = '10.96.0.0/16';
const NET = 'appnet';

async function createEverywhere(lab: Lab, hosts: string[]): Promise<void> {
  for (const h of hosts) await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
}

function server(lab: Lab, host: string, name: string): Promise<string> {
  return lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
}

function sleeper(lab: Lab, host: string, name: string, ...args: string[]): Promise<string> {
  return lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...args, TEST_IMAGE, 'sleep', '3600');
}

/** Ping and a page fetch from a container to an address on another host. */
async function expectReach(lab: Lab, host: string, container: string, ip: string, page: string): Promise<void> {
  expect({ ip, ping: await pings(lab, host, container, ip, { timeoutS: 2 }) }).toEqual({ ip, ping: 'ok' });
  expect(await fetchFrom(lab, host, container, ip, 80, 5)).toEqual({ reach: 'ok', page: expect.stringContaining(page) });
}

describe('one network on three hosts sharing a link (host-gw)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'flat3', hosts: 3 });
    // h3 joins the cluster later.
    await lab.agentStop('h3');
    await createEverywhere(lab, ['h1', 'h2']);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('lets a container on h1 reach one on h2 by ping and TCP, with host-gw routes', async () => {
    await server(lab, 'h2', 'web2');
    await sleeper(lab, 'h1', 'client');
    await expectReach(lab, 'h1', 'client', await lab.containerIp('h2', 'web2'), 'h2');
    const routes = await lab.execOk('h1', ['ip', 'route', 'show', 'proto', '252']);
    expect(routes).toMatch(new RegExp(`10\\.96\\.\\d+\\.\\d+/26 via ${(await lab.hostIp('h2')).replace(/\./g, '\\.')}`));
  });

  it('gives a host that joins later routes to everyone, and everyone a route to it', async () => {
    await lab.agentStart('h3');
    await createEverywhere(lab, ['h3']);
    await server(lab, 'h3', 'web3');
    await expectReach(lab, 'h1', 'client', await lab.containerIp('h3', 'web3'), 'h3');
    await sleeper(lab, 'h3', 'client3');
    await expectReach(lab, 'h3', 'client3', await lab.containerIp('h2', 'web2'), 'h2');
  });

  it('uses the same virtual gateway on every host', async () => {
    const gateways = await Promise.all(
      ['h1', 'h3'].map((h) => lab.dockerOk(h, 'inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").Gateway}}`, h === 'h1' ? 'client' : 'client3')),
    );
    expect(gateways).toEqual(['10.96.0.1', '10.96.0.1']);
  });

  it('never hands out one address twice under 30 concurrent docker runs spread over the hosts', async () => {
    const runs = Array.from({ length: 30 }, (_, i) => ({ host: `h${(i % 3) + 1}`, name: `many${i}` }));
    const results = await Promise.all(
      runs.map(({ host, name }) => lab.docker(host, 'run', '-d', '--init', '--name', name, '--net', NET, TEST_IMAGE, 'sleep', '3600')),
    );
    expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const ips = await Promise.all(runs.map(({ host, name }) => lab.containerIp(host, name)));
    expect(new Set(ips).size).toBe(30);
    await Promise.all(['h1', 'h2', 'h3'].map((h) => lab.dockerOk(h, 'rm', '-f', ...runs.filter((r) => r.host === h).map((r) => r.name))));
  });

  it('loses nothing of a running ping while the peer\'s agent is killed and restarted', async () => {
    const target = await lab.containerIp('h2', 'web2');
    const before = await lab.agent('h2');
    const pinging = windowed(lab, 'h1', 'client', `ping -c 100 -i 0.1 -W 1 ${target}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await lab.agentStop('h2', 'KILL');
    await lab.agentStart('h2');
    const serving = secondsSinceBoot();
    const after = await lab.agent('h2');
    const result = await pinging;
    expect(result.stdout).toContain('100 packets transmitted, 100 packets received');
    // The restart happened while the ping ran: a new agent, started and serving inside its window.
    expect(after.pid).not.toBe(before.pid);
    expect(after.startedAt).toBeGreaterThan(result.from);
    expect(serving).toBeLessThan(result.to);
  });

  it('keeps traffic flowing with etcd down, fails new containers fast and clearly, and converges when it returns', async () => {
    await lab.etcdStop('KILL');
    try {
      await expectReach(lab, 'h1', 'client', await lab.containerIp('h2', 'web2'), 'h2');
      const refused = await lab.docker('h1', 'run', '--rm', '--net', NET, TEST_IMAGE, 'true');
      expect(refused.code).not.toBe(0);
      // Fast because the store call has a deadline of its own and the plugin answers its error,
      // rather than leaving Docker to wait out its plugin timeout.
      expect(refused.stderr).toMatch(/etcd at [\d.]+:2379 did not answer within \d+s: is etcd running\?/);
    } finally {
      await lab.etcdStart();
    }
    await eventually(async () => {
      const r = await lab.docker('h1', 'run', '-d', '--init', '--name', 'after-etcd', '--net', NET, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
      if (r.code !== 0) {
        await lab.docker('h1', 'rm', '-f', 'after-etcd');
        throw new Error(r.stderr);
      }
    });
    await expectReach(lab, 'h2', 'web2', await lab.containerIp('h1', 'after-etcd'), 'hello from h1');
  });

  it('creates a network defined with `sluice network create` on every host, and removes it with `sluice network rm`', async () => {
    await lab.sluiceOk('h1', 'network', 'create', 'shared', '--subnet', '10.120.0.0/16');
    for (const h of ['h1', 'h2', 'h3']) {
      await eventually(async () => expect(await lab.dockerOk(h, 'network', 'ls', '--format', '{{.Name}} {{.Driver}}')).toContain('shared sluice'));
    }
    await lab.dockerOk('h3', 'run', '-d', '--init', '--name', 'on-shared', '--net', 'shared', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    await lab.dockerOk('h1', 'run', '-d', '--init', '--name', 'shared-client', '--net', 'shared', TEST_IMAGE, 'sleep', '3600');
    await expectReach(lab, 'h1', 'shared-client', await lab.containerIp('h3', 'on-shared'), 'h3');
    await lab.dockerOk('h3', 'rm', '-f', 'on-shared');
    await lab.dockerOk('h1', 'rm', '-f', 'shared-client');
    await lab.sluiceOk('h1', 'network', 'rm', 'shared');
    for (const h of ['h1', 'h2', 'h3']) {
      await eventually(async () => expect(await lab.dockerOk(h, 'network', 'ls', '--format', '{{.Name}}')).not.toContain('shared'));
    }
  });

  it('shows every node with its liveness and blocks in sluice status', async () => {
    const status = await lab.sluiceOk('h2', 'status');
    for (const h of ['h1', 'h2', 'h3']) expect(status).toMatch(new RegExp(`^${h}\\s+alive\\s+10\\.250\\.0\\.\\d+\\s+auto\\s+\\S+\\s+\\S*10\\.96\\.`, 'm'));
  });
});

describe('one network across a router (VXLAN)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'routed', hosts: 3, topology: 'routed' });
    await createEverywhere(lab, ['h1', 'h2', 'h3']);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('reaches containers on hosts behind the router by ping and TCP through VXLAN, and on its own subnet by host-gw', async () => {
    await sleeper(lab, 'h1', 'client');
    await server(lab, 'h2', 'web2'); // other subnet: VXLAN
    await server(lab, 'h3', 'web3'); // same subnet as h1: host-gw
    await expectReach(lab, 'h1', 'client', await lab.containerIp('h2', 'web2'), 'h2');
    await expectReach(lab, 'h1', 'client', await lab.containerIp('h3', 'web3'), 'h3');
    const routes = await lab.execOk('h1', ['ip', 'route', 'show', 'proto', '252']);
    expect(routes).toMatch(/dev sluice\.vxlan/);
    expect(routes).toMatch(new RegExp(`via ${(await lab.hostIp('h3')).replace(/\./g, '\\.')} dev`));
  });

  it('sends full-size packets through the tunnel: the container MTU leaves room for the header', async () => {
    const ip = await lab.containerIp('h2', 'web2');
    expect(await pings(lab, 'h1', 'client', ip, { timeoutS: 2, size: 1422 })).toBe('ok');
    expect(await lab.dockerOk('h1', 'exec', 'client', 'cat', '/sys/class/net/eth0/mtu')).toBe('1450');
  });
});
