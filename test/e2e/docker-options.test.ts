// `docker network create` and `docker run` options on two real Docker hosts:
// each one honoured on both hosts, or refused with a clear error and nothing
// left behind.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { connects, pings } from '../helpers/probe';

jest.setTimeout(600_000);

const PLUGIN = ['-d', 'sluice', '--ipam-driver', 'sluice'];
const MTU = 'com.docker.network.driver.mtu';

function createOn(lab: Lab, host: string, ...args: string[]) {
  return lab.docker(host, 'network', 'create', ...PLUGIN, ...args);
}

async function createEverywhere(lab: Lab, ...args: string[]): Promise<void> {
  for (const h of lab.hosts) await lab.dockerOk(h, 'network', 'create', ...PLUGIN, ...args);
}

function sleeper(lab: Lab, host: string, name: string, net: string, ...args: string[]): Promise<string> {
  return lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', net, ...args, TEST_IMAGE, 'sleep', '3600');
}

function server(lab: Lab, host: string, name: string, net: string, ...args: string[]): Promise<string> {
  return lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', net, ...args, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
}

async function networks(lab: Lab, host: string): Promise<string[]> {
  return (await lab.dockerOk(host, 'network', 'ls', '--format', '{{.Name}}')).split('\n');
}

/** `docker network create … NAME` on `host` fails saying `message`, and leaves no network NAME there. */
async function expectCreateRefused(lab: Lab, host: string, message: string, ...args: string[]): Promise<void> {
  const r = await createOn(lab, host, ...args);
  expect(r.stderr).toContain(message);
  expect(await networks(lab, host)).not.toContain(args.at(-1));
}

describe('docker options on two hosts', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'dockeropts', hosts: 2 });
    await createEverywhere(lab, '--subnet', '10.140.0.0/24', 'plain');
  });
  afterAll(async () => {
    await lab?.down();
  });

  describe('--internal', () => {
    beforeAll(async () => {
      await createEverywhere(lab, '--internal', '--subnet', '10.141.0.0/24', 'inner');
      await server(lab, 'h2', 'inner-web', 'inner');
      await sleeper(lab, 'h1', 'inner-client', 'inner');
      await sleeper(lab, 'h1', 'plain-client', 'plain');
      // Outside the internal network: a page published on h2's own address.
      await server(lab, 'h2', 'outside-web', 'plain', '-p', '8080:80');
    });

    it('lets containers reach each other across hosts', async () => {
      const web = await lab.containerIp('h2', 'inner-web', 'inner');
      expect(await connects(lab, 'h1', 'inner-client', web)).toBe('ok');
      expect(await pings(lab, 'h1', 'inner-client', web, { timeoutS: 2 })).toBe('ok');
    });

    it('reaches nothing outside the network, not even the other host; a plain network does (positive control)', async () => {
      const h2 = await lab.hostIp('h2');
      expect(await connects(lab, 'h1', 'plain-client', h2, 8080)).toBe('ok');
      expect(await pings(lab, 'h1', 'plain-client', h2, { timeoutS: 2 })).toBe('ok');
      // No default route: the kernel refuses at once rather than a firewall dropping.
      expect(await connects(lab, 'h1', 'inner-client', h2, 8080)).toMatch(/^error: .*unreachable/i);
      expect(await pings(lab, 'h1', 'inner-client', h2, { timeoutS: 2 })).toMatch(/^error: .*unreachable/i);
      expect(await lab.dockerOk('h1', 'exec', 'inner-client', 'ip', 'route')).not.toContain('default');
      expect(await lab.dockerOk('h1', 'exec', 'plain-client', 'ip', 'route')).toContain('default via 10.140.0.1');
    });
  });

  it('-o mtu: the containers of the network get that MTU on every host', async () => {
    await createEverywhere(lab, '-o', `${MTU}=1400`, '--subnet', '10.142.0.0/24', 'small');
    for (const h of lab.hosts) {
      await sleeper(lab, h, `small-${h}`, 'small');
      expect(await lab.dockerOk(h, 'exec', `small-${h}`, 'cat', '/sys/class/net/eth0/mtu')).toBe('1400');
    }
  });

  it('--aux-address: the same create succeeds on both hosts and the address is never handed out', async () => {
    await createEverywhere(lab, '--subnet', '10.143.0.0/29', '--aux-address', 'router=10.143.0.2', '--aux-address', 'printer=10.143.0.5', 'aux');
    // A /29: gateway .1, aux .2 and .5, so .3, .4 and .6 for containers, then full.
    const ips: string[] = [];
    for (const name of ['aux-a', 'aux-b', 'aux-c']) {
      await sleeper(lab, 'h1', name, 'aux');
      ips.push(await lab.containerIp('h1', name, 'aux'));
    }
    expect(ips.sort()).toEqual(['10.143.0.3', '10.143.0.4', '10.143.0.6']);
    const full = await lab.docker('h1', 'run', '-d', '--name', 'aux-d', '--net', 'aux', TEST_IMAGE, 'sleep', '3600');
    expect(full.stderr).toMatch(/10\.143\.0\.0\/29 is full/);
  });

  it('--ip-range: addresses come from the range only, on both hosts', async () => {
    await createEverywhere(lab, '--subnet', '10.144.0.0/24', '--ip-range', '10.144.0.128/26', 'ranged');
    const ips: string[] = [];
    for (const h of lab.hosts) {
      for (const i of [1, 2]) {
        await sleeper(lab, h, `ranged-${h}-${i}`, 'ranged');
        ips.push(await lab.containerIp(h, `ranged-${h}-${i}`, 'ranged'));
      }
    }
    const last = ips.map((ip) => Number(ip.split('.')[3]));
    expect({ ips, inRange: last.every((n) => n >= 128 && n < 192) }).toEqual({ ips, inRange: true });
    expect(new Set(ips).size).toBe(4);
    // Each host holds blocks of the range only: the other routes nothing else of the subnet to it.
    for (const h of lab.hosts) {
      const routes = await lab.execOk(h, ['ip', 'route', 'show', 'proto', '252']);
      const blocks = [...routes.matchAll(/10\.144\.0\.(\d+)\/\d+ via/g)].map((m) => Number(m[1]));
      expect({ h, blocks, inRange: blocks.length > 0 && blocks.every((n) => n >= 128 && n < 192) }).toEqual({ h, blocks, inRange: true });
    }
  });

  it('--attachable: Docker keeps it to itself (the plugin never sees it); the network works as any other on both hosts', async () => {
    await createEverywhere(lab, '--attachable', '--subnet', '10.149.0.0/24', 'attach');
    await server(lab, 'h2', 'attach-web', 'attach');
    await sleeper(lab, 'h1', 'attach-client', 'attach');
    expect(await connects(lab, 'h1', 'attach-client', await lab.containerIp('h2', 'attach-web', 'attach'))).toBe('ok');
  });

  it('a compose file\'s driver_opts and ipam config: internal, MTU, ip-range and aux address on both hosts', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-compose-'));
    await writeFile(
      path.join(dir, 'docker-compose.yml'),
      [
        "version: '2.4'",
        'services:',
        '  app:',
        `    image: ${TEST_IMAGE}`,
        '    command: [sleep, "3600"]',
        '    init: true',
        '    networks: [back]',
        'networks:',
        '  back:',
        '    driver: sluice',
        '    internal: true',
        `    driver_opts: {${MTU}: "1300"}`,
        '    ipam:',
        '      driver: sluice',
        '      config:',
        '        - subnet: 10.150.0.0/24',
        '          ip_range: 10.150.0.64/26',
        '          aux_addresses: {router: 10.150.0.65}',
      ].join('\n'),
    );
    try {
      for (const h of lab.hosts) {
        const compose = ['env', `DOCKER_HOST=unix:///run/sluice-lab/${lab.name}/${h}/docker.sock`, 'docker-compose', '-f', path.join(dir, 'docker-compose.yml'), '-p', 'cmp'];
        const up = await lab.exec(h, [...compose, 'up', '-d']);
        expect({ h, code: up.code, stderr: up.code === 0 ? '' : up.stderr }).toEqual({ h, code: 0, stderr: '' });
        const ip = await lab.containerIp(h, 'cmp_app_1', 'cmp_back');
        // In the range 10.150.0.64/26, and not the aux address .65.
        const last = Number(ip.split('.')[3]);
        expect({ ip, inRange: ip.startsWith('10.150.0.') && last >= 64 && last < 128 && last !== 65 }).toEqual({ ip, inRange: true });
        expect(await lab.dockerOk(h, 'exec', 'cmp_app_1', 'cat', '/sys/class/net/eth0/mtu')).toBe('1300');
        expect(await lab.dockerOk(h, 'exec', 'cmp_app_1', 'ip', 'route')).not.toContain('default');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('refused with a clear error, leaving no network', () => {
    it('a create whose options differ from the other host\'s', async () => {
      await lab.dockerOk('h1', 'network', 'create', ...PLUGIN, '--internal', '--subnet', '10.145.0.0/24', 'differs');
      const message = 'sluice network 10.145.0.0/24 was created with --internal: create it on this host the same way';
      await expectCreateRefused(lab, 'h2', message, '--subnet', '10.145.0.0/24', 'differs');
    });

    it('an -o sluice does not know', async () => {
      const message = 'sluice does not know the option -o com.docker.network.bridge.name';
      await expectCreateRefused(lab, 'h1', message, '-o', 'com.docker.network.bridge.name=br9', '--subnet', '10.146.0.0/24', 'unknown-opt');
      // Nothing of it left in the cluster: the same subnet can be created afresh.
      await lab.dockerOk('h1', 'network', 'create', ...PLUGIN, '--subnet', '10.146.0.0/24', 'unknown-opt');
    });

    it('--ipv6 without an IPv6 --subnet (sluice picks none of its own)', async () => {
      await expectCreateRefused(lab, 'h1', '--ipv6 needs an IPv6 --subnet, such as --subnet fd00:96::/64', '--ipv6', '--subnet', '10.147.0.0/24', 'six');
      // Nothing of it left in the cluster: with an IPv6 subnet the same create works.
      await lab.dockerOk('h1', 'network', 'create', ...PLUGIN, '--ipv6', '--subnet', '10.147.0.0/24', '--subnet', 'fd00:147::/64', 'six');
      await lab.dockerOk('h1', 'network', 'rm', 'six');
    });

    it('--gateway once a host uses the network with another gateway', async () => {
      const message = 'network 10.140.0.0/24 is in use with gateway 10.140.0.1: use --gateway 10.140.0.1 or omit --gateway';
      await expectCreateRefused(lab, 'h2', message, '--subnet', '10.140.0.0/24', '--gateway', '10.140.0.9', 'plain-gw');
    });

    it('--scope swarm (Docker itself refuses it outside swarm)', async () => {
      const r = await createOn(lab, 'h1', '--scope', 'swarm', '--subnet', '10.148.0.0/24', 'swarmy');
      expect(r.code).not.toBe(0);
      expect(await networks(lab, 'h1')).not.toContain('swarmy');
    });
  });

  describe('docker run -p', () => {
    it('-p HOST:CONTAINER is reachable from the other host (positive control)', async () => {
      await server(lab, 'h1', 'published', 'plain', '-p', '8080:80');
      const url = `http://${await lab.hostIp('h1')}:8080/`;
      expect((await lab.exec('h2', ['timeout', '4', 'busybox', 'wget', '-q', '-O-', url])).code).toBe(0);
      // What the README says: Docker takes port bindings only from its own drivers, so `docker port` is empty
      // even here; a port Sluice picked for -p 80 could never be shown.
      expect(await lab.dockerOk('h1', 'port', 'published')).toBe('');
    });

    it.each([
      ['-p 80', ['-p', '80'], /-p 80\/tcp \(or -P\) has no host port: sluice cannot tell Docker a port it picks/],
      ['-P', ['-P', '--expose', '80'], /-p 80\/tcp \(or -P\) has no host port/],
      ['sctp', ['-p', '9000:9000/sctp'], /-p 9000\/sctp: sluice publishes tcp and udp ports only/],
    ])('%s is refused with a clear error, leaving no container running', async (_label, args, message) => {
      const name = `refused-${_label.replace(/\W/g, '')}`;
      const r = await lab.docker('h1', 'run', '-d', '--name', name, '--net', 'plain', ...args, TEST_IMAGE, 'sleep', '3600');
      expect(r.stderr).toMatch(message);
      expect(await lab.dockerOk('h1', 'ps', '-q', '--filter', `name=${name}`)).toBe('');
      await lab.docker('h1', 'rm', '-f', name);
    });
  });
});
