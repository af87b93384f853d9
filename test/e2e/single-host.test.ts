// One Docker host with the default embedded store: what a user does with
// `docker network create -d sluice --ipam-driver sluice` and `docker run`.
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { pluginCall } from '../helpers/plugin-client';
import { eventually as retry } from '../helpers/eventually';
import { pings } from '../helpers/probe';

const eventually = (check: () => Promise<void>, timeoutMs = 15_000) => retry(check, timeoutMs, 250);

jest.setTimeout(300_000);

const NET = 'appnet';
const SUBNET = '10.96.0.0/16';

describe('sluice on one Docker host', () => {
  let lab: Lab;
  const docker = (...args: string[]) => lab.dockerOk('h1', ...args);
  /** A detached container that stays up and stops at once (busybox ignores SIGTERM as PID 1). */
  const runDetached = (name: string, ...args: string[]) =>
    docker('run', '-d', '--init', '--name', name, ...args, TEST_IMAGE, 'sleep', '3600');
  const ping = (from: string, ip: string) => pings(lab, 'h1', from, ip, { timeoutS: 2 });

  beforeAll(async () => {
    lab = await Lab.up({ name: 'single', hosts: 1, store: 'file' });
    await docker('network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('gives containers addresses in the subnet and the same virtual gateway', async () => {
    await runDetached('c1', '--net', NET);
    await runDetached('c2', '--net', NET);
    const [ip1, ip2] = [await lab.containerIp('h1', 'c1'), await lab.containerIp('h1', 'c2')];
    expect(ip1).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(ip2).not.toBe(ip1);
    const gateway = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").Gateway}}`, 'c1');
    expect(gateway).toBe('10.96.0.1');
    expect(await docker('exec', 'c1', 'ip', 'route')).toContain('default via 10.96.0.1');
  });

  it('lets containers on the network ping each other and the gateway', async () => {
    expect(await ping('c1', await lab.containerIp('h1', 'c2'))).toBe('ok');
    expect(await ping('c2', '10.96.0.1')).toBe('ok');
  });

  it('reaches the outside through NAT: the underlay has no route back to the pool', async () => {
    const outside = (await lab.etcdEndpoint()).replace(/^etcd:\/\/|:\d+$/g, '');
    expect(await ping('c1', outside)).toBe('ok');
  });

  it('gives --ip exactly, and refuses a taken one with a clear error', async () => {
    await runDetached('fixed', '--net', NET, '--ip', '10.96.7.7');
    expect(await lab.containerIp('h1', 'fixed')).toBe('10.96.7.7');
    const again = await lab.docker('h1', 'run', '--rm', '--net', NET, '--ip', '10.96.7.7', TEST_IMAGE, 'true');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/address 10\.96\.7\.7 is already in use/);
  });

  it('publishes -p 8080:80 on the host, as the bridge driver does', async () => {
    await docker('run', '-d', '--init', '--name', 'web', '--net', NET, '-p', '8080:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
    const hostIp = await lab.hostIp('h1');
    const page = await lab.execOk('underlay', ['timeout', '5', 'busybox', 'wget', '-q', '-O-', `http://${hostIp}:8080/`]);
    expect(page).toContain('h1');
    await docker('rm', '-f', 'web');
    const after = await lab.exec('underlay', ['timeout', '3', 'busybox', 'wget', '-q', '-O-', `http://${hostIp}:8080/`]);
    expect(after.code).not.toBe(0);
  });

  it('connects a running container to a second network: an interface and address on each, both reachable', async () => {
    await docker('network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.97.0.0/16', 'second');
    await runDetached('other', '--net', 'second');
    await docker('network', 'connect', 'second', 'c1');
    const addresses = await docker('exec', 'c1', 'ip', '-4', '-o', 'addr');
    expect(addresses).toMatch(/eth0 .*inet 10\.96\./);
    expect(addresses).toMatch(/eth1 .*inet 10\.97\./);
    expect(await ping('c1', await lab.containerIp('h1', 'other', 'second'))).toBe('ok');
    expect(await ping('c1', await lab.containerIp('h1', 'c2', NET))).toBe('ok');
    await docker('network', 'disconnect', 'second', 'c1');
    expect(await docker('exec', 'c1', 'ip', '-4', '-o', 'addr')).not.toMatch(/10\.97\./);
  });

  it('isolates two sluice networks from each other by default', async () => {
    expect(await ping('other', await lab.containerIp('h1', 'c2', NET))).toBe('timed out');
    expect(await ping('other', '10.97.0.1')).toBe('ok'); // its own network's gateway answers
  });

  it('never hands out one address twice under 50 concurrent docker runs', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `burst${i}`);
    const runs = await Promise.all(names.map((name) => lab.docker('h1', 'run', '-d', '--init', '--name', name, '--net', NET, TEST_IMAGE, 'sleep', '3600')));
    expect(runs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    const ips = await Promise.all(names.map((name) => lab.containerIp('h1', name)));
    expect(new Set(ips).size).toBe(50);
    await docker('rm', '-f', ...names);
  });

  it('releases the address and the veth when a container is removed', async () => {
    const ip = await lab.containerIp('h1', 'c2');
    const endpoint = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").EndpointID}}`, 'c2');
    expect(await lab.execOk('h1', ['ip', '-o', 'link'])).toContain(endpoint.slice(0, 11));
    await docker('rm', '-f', 'c2');
    expect(await lab.sluiceOk('h1', 'status')).not.toMatch(new RegExp(`\\s${ip.replace(/\./g, '\\.')}\\s`));
    expect(await lab.execOk('h1', ['ip', '-o', 'link'])).not.toContain(endpoint.slice(0, 11));
    // The address is free again: --ip can take it.
    await runDetached('reuse', '--net', NET, '--ip', ip);
    await docker('rm', '-f', 'reuse');
  });

  describe('bad input gets a clear error and loses nothing', () => {
    it('refuses a -d sluice network without sluice IPAM, naming the right command', async () => {
      const r = await lab.docker('h1', 'network', 'create', '-d', 'sluice', '--subnet', '10.98.0.0/16', 'noipam');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('docker network create -d sluice --ipam-driver sluice --subnet CIDR NAME');
    });

    it('refuses a subnet overlapping another sluice network, and --ipv6 without an IPv6 subnet', async () => {
      const overlap = await lab.docker('h1', 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.128.0/17', 'overlap');
      expect(overlap.stderr).toMatch(/overlaps sluice network 10\.96\.0\.0\/16/);
      const v6 = await lab.docker('h1', 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--ipv6', '--subnet', '10.99.0.0/16', 'six');
      expect(v6.code).not.toBe(0);
      expect(v6.stderr).toMatch(/--ipv6 needs an IPv6 --subnet, such as --subnet fd00:96::\/64/);
      expect(await docker('network', 'ls', '--format', '{{.Name}}')).not.toMatch(/overlap|six|noipam/);
    });

    it('answers malformed and unknown requests on the real socket with {"Err"} and keeps serving', async () => {
      const socket = lab.pluginSocket('h1');
      const malformed = await pluginCall(socket, 'NetworkDriver.CreateEndpoint', '{"NetworkID": ');
      expect(malformed.status).toBe(400);
      expect(JSON.parse(malformed.body)).toEqual({ Err: expect.stringMatching(/malformed JSON/) });
      const missing = await pluginCall(socket, 'IpamDriver.RequestAddress', '{}\n');
      expect(missing.status).toBe(400);
      const unknown = await pluginCall(socket, 'NetworkDriver.Join', JSON.stringify({ NetworkID: 'f'.repeat(64), EndpointID: 'e'.repeat(64), SandboxKey: '/x' }));
      expect(unknown.status).toBe(404);
      expect(JSON.parse(unknown.body).Err).toMatch(/unknown network ffffffffffff/);
      const pool = await pluginCall(socket, 'IpamDriver.RequestAddress', JSON.stringify({ PoolID: '10.55.0.0-16', Address: '', Options: null }));
      expect(JSON.parse(pool.body).Err).toMatch(/unknown pool/);
      expect((await pluginCall(socket, 'NetworkDriver.AllocateNetwork', '{}')).status).toBe(404);
      // Still alive and answering.
      expect(JSON.parse((await pluginCall(socket, 'Plugin.Activate', '')).body)).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    });

    it('reports an exhausted pool as such', async () => {
      await docker('network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.90.0.0/29', '--ipam-opt', 'block-size=29', 'tiny');
      // 8 addresses - network - broadcast - gateway = 5.
      for (let i = 0; i < 5; i++) await runDetached(`tiny${i}`, '--net', 'tiny');
      const full = await lab.docker('h1', 'run', '--rm', '--net', 'tiny', TEST_IMAGE, 'true');
      expect(full.code).not.toBe(0);
      expect(full.stderr).toMatch(/network 10\.90\.0\.0\/29 is full/);
      await docker('rm', '-f', ...Array.from({ length: 5 }, (_, i) => `tiny${i}`));
      await docker('network', 'rm', 'tiny');
    });
  });

  describe('restarts', () => {
    it('keeps running containers connected while the agent is killed and restarted, and finishes a docker rm issued meanwhile', async () => {
      await runDetached('survivor', '--net', NET);
      await runDetached('victim', '--net', NET);
      const survivorIp = await lab.containerIp('h1', 'survivor');
      const victimEndpoint = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").EndpointID}}`, 'victim');
      await lab.agentStop('h1', 'KILL');
      expect(await ping('c1', survivorIp)).toBe('ok');
      // Docker retries the plugin until it is back (about 15 s per call before giving up).
      const removing = lab.docker('h1', 'rm', '-f', 'victim');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await lab.agentStart('h1');
      expect((await removing).code).toBe(0);
      expect(await ping('c1', survivorIp)).toBe('ok');
      const status = () => lab.sluiceOk('h1', 'status');
      await eventually(async () => expect(await status()).not.toContain(victimEndpoint.slice(0, 12)));
      expect(await lab.execOk('h1', ['ip', '-o', 'link'])).not.toContain(victimEndpoint.slice(0, 11));
      expect(await status()).toContain('survivor');
    });

    it('restarts cleanly with SIGTERM too', async () => {
      await lab.agentStop('h1', 'TERM');
      await lab.agentStart('h1');
      expect(await ping('c1', await lab.containerIp('h1', 'survivor'))).toBe('ok');
    });

    it('after a dockerd restart, removes the endpoints Docker lost, and new containers work', async () => {
      await lab.dockerdRestart('h1');
      await eventually(async () => expect(await lab.sluiceOk('h1', 'status')).not.toMatch(/survivor|\bc1\b/), 30_000);
      expect((await lab.execOk('h1', ['ip', '-o', 'link'])).match(/slv[0-9a-f]{11}@/g) ?? []).toEqual([]);
      await runDetached('fresh', '--net', NET);
      await runDetached('fresh2', '--net', NET);
      expect(await ping('fresh', await lab.containerIp('h1', 'fresh2'))).toBe('ok');
    });
  });

  it('removes the network with docker network rm: gateway gone from the host', async () => {
    await docker('rm', '-f', 'fresh', 'fresh2', 'fixed', 'other');
    await docker('network', 'rm', NET);
    expect(await lab.execOk('h1', ['ip', '-o', 'addr'])).not.toContain('10.96.0.1/32');
    expect(await lab.sluiceOk('h1', 'network', 'ls')).not.toContain('10.96.0.0/16');
  });
});
