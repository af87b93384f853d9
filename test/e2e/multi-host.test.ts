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
    // The lab's hosts have an IPv6 underlay address too, in its own column.
    for (const h of ['h1', 'h2', 'h3']) expect(status).toMatch(new RegExp(`^${h}\\s+alive\\s+10\\.250\\.0\\.\\d+\\s+fd00:250::\\d+\\s+auto\\s+\\S+\\s+\\S*10\\.96\\.`, 'm'));
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

  describe('full MTU to on-link peers, no black hole into the tunnel (h1: h3 on-link, h2 through VXLAN)', () => {
    const BIG = 2 * 1024 * 1024;

    /** iputils ping in a container's network namespace: busybox's cannot set DF (`-M do`). */
    async function dfPing(host: string, container: string, to: string, size: number) {
      const pid = await lab.dockerOk(host, 'inspect', '-f', '{{.State.Pid}}', container);
      return lab.exec(host, ['nsenter', '-t', pid, '-n', 'ping', '-M', 'do', '-c', '1', '-W', '2', '-s', String(size), to]);
    }

    /** How many bytes of a BIG body `container` gets over TCP from `to`. */
    async function download(host: string, container: string, to: string): Promise<string> {
      return lab.dockerOk(host, 'exec', container, 'sh', '-c', `timeout 30 wget -q -O- http://${to}/big | wc -c`);
    }

    beforeAll(async () => {
      await server(lab, 'h1', 'web1');
      for (const [host, name] of [['h1', 'web1'], ['h2', 'web2'], ['h3', 'web3']] as const) {
        await lab.dockerOk(host, 'exec', name, 'busybox', 'dd', 'if=/dev/zero', 'of=/www/big', 'bs=1024', `count=${BIG / 1024}`);
      }
    });

    it('gives containers the underlay MTU, and sends full-size DF packets to the on-link peer both ways', async () => {
      expect(await lab.dockerOk('h1', 'exec', 'web1', 'cat', '/sys/class/net/eth0/mtu')).toBe('1500');
      const [web1, web3] = [await lab.containerIp('h1', 'web1'), await lab.containerIp('h3', 'web3')];
      // 1472 bytes of ICMP payload with DF: a 1500-byte packet, unfragmented, all the way.
      expect((await dfPing('h1', 'web1', web3, 1472)).code).toBe(0);
      expect((await dfPing('h3', 'web3', web1, 1472)).code).toBe(0);
      // Control: one byte more does not fit the container's own interface.
      expect((await dfPing('h1', 'web1', web3, 1473)).code).not.toBe(0);
    });

    it('tells a container sending too large a DF packet into the tunnel the tunnel MTU, and fits the next one, both ways', async () => {
      const [web1, web2] = [await lab.containerIp('h1', 'web1'), await lab.containerIp('h2', 'web2')];
      for (const [host, from, to] of [['h1', 'web1', web2], ['h2', 'web2', web1]] as const) {
        const tooBig = await dfPing(host, from, to, 1472);
        // Frag-needed (or the kernel's own error once it learned it): never a silent drop.
        expect({ from, code: tooBig.code, said: /mtu ?= ?1450/.test(tooBig.stdout + tooBig.stderr) }).toEqual({ from, code: 1, said: true });
        expect({ from, code: (await dfPing(host, from, to, 1422)).code }).toEqual({ from, code: 0 });
      }
    });

    it('carries large TCP bodies both ways to the on-link and the VXLAN peer, the tunnel\'s handshakes MSS-clamped', async () => {
      const [web1, web2, web3] = [await lab.containerIp('h1', 'web1'), await lab.containerIp('h2', 'web2'), await lab.containerIp('h3', 'web3')];
      const clamped = async () => {
        const rules = await lab.execOk('h1', ['iptables', '-t', 'filter', '-L', 'FORWARD', '-v', '-x', '-n']);
        return Number(/^\s*(\d+)\s+\d+\s+TCPMSS\b/m.exec(rules)?.[1] ?? -1);
      };
      const before = await clamped();
      expect(await download('h1', 'client', web2)).toBe(String(BIG));
      expect(await download('h2', 'web2', web1)).toBe(String(BIG));
      expect(await clamped()).toBeGreaterThan(before);
      expect(await download('h1', 'client', web3)).toBe(String(BIG));
      expect(await download('h3', 'web3', web1)).toBe(String(BIG));
    });
  });
});
