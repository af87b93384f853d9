// The managed (v2) plugin package: plugin/build.sh assembles the rootfs from this machine's files
// and creates the plugin on a lab host's dockerd, which enables it (containerd + runc of that
// dockerd, in the host's network namespace); containers on a network of it then reach each other.
import { execFile } from 'node:child_process';
import { readFile, readdir, rmdir } from 'node:fs/promises';
import * as path from 'node:path';
import { eventually } from '../helpers/eventually';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { pings } from '../helpers/probe';

jest.setTimeout(600_000);

const PLUGIN = 'sluice/sluice:latest';
const NET = 'pnet';
const SUBNET = '10.96.0.0/16';
const BUILD_SCRIPT = path.resolve(__dirname, '../../plugin/build.sh');
const BUILD_DIR = path.resolve(__dirname, '../../plugin/build');
/** node alone is ~86 MB stripped; the rest (agent, production node_modules, tools) ~25 MB. */
const MAX_ROOTFS_MB = 160;

/** Runs a command; rejects with its output on a non-zero exit or after the timeout. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Empty cgroup directories named after the plugin (runc leaves them only if its container was killed). */
async function removePluginCgroups(id: string): Promise<void> {
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const child = path.join(dir, entry.name);
      if (entry.name === id) await rmdir(child).catch(() => undefined);
      else if (depth > 0) await walk(child, depth - 1);
    }
  };
  await walk('/sys/fs/cgroup', 3);
}

describe('sluice as a managed Docker plugin', () => {
  let lab: Lab | undefined;
  let pluginId: string | undefined;
  /** h1's files that lab.sh keeps on the machine: dockerd's socket and log. */
  let hostDir = '';

  const docker = (...args: string[]) => lab!.dockerOk('h1', ...args);
  const runDetached = (name: string) => docker('run', '-d', '--init', '--name', name, '--net', NET, TEST_IMAGE, 'sleep', '3600');
  const ping = (from: string, ip: string) => pings(lab!, 'h1', from, ip, { timeoutS: 2 });
  /** dockerd's log, where the plugin's output goes (with DEBUG=sluice:*, the agent's "in sync" line too). */
  const dockerdLog = () => readFile(path.join(hostDir, 'dockerd.log'), 'utf8');
  const inSyncLines = async () => ((await dockerdLog()).match(/agent in sync/g) ?? []).length;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'plugin', hosts: 1, agent: false });
    // lab.sh keeps h1's dockerd socket beside its plugins directory. The plugin's docker-sock
    // mount is made by runc in dockerd's mount namespace: the path must exist there too.
    hostDir = path.dirname(path.dirname(lab.pluginSocket('h1')));
    const dockerSocket = path.join(hostDir, 'docker.sock');
    await lab.execOk('h1', ['test', '-S', dockerSocket]);

    const built = await run('bash', [BUILD_SCRIPT, '--create', PLUGIN, '-H', `unix://${dockerSocket}`], 300_000);
    process.stderr.write(built);
    pluginId = await docker('plugin', 'inspect', '-f', '{{.Id}}', PLUGIN);
    // h1 runs in the machine's UTS namespace: name it as the lab does. /var/lib/sluice (the
    // state mount's default source) is h1's own directory in its mount namespace.
    await docker('plugin', 'set', PLUGIN, `docker-sock.source=${dockerSocket}`, 'SLUICE_NODE=h1', `SLUICE_NODE_IP=${await lab.hostIp('h1')}`, 'DEBUG=sluice:*');
    await docker('plugin', 'enable', '--timeout', '60', PLUGIN);
  });

  afterAll(async () => {
    if (!lab) return;
    // Best effort, in order; lab down stops whatever is left (the plugin runs in h1's netns).
    const h1 = lab;
    const quietly = (...args: string[]) => h1.docker('h1', ...args).catch(() => undefined);
    await quietly('rm', '-f', 'pc1', 'pc2');
    await quietly('network', 'rm', NET);
    await quietly('plugin', 'disable', '-f', PLUGIN);
    await quietly('plugin', 'rm', '-f', PLUGIN);
    await lab.down();
    if (pluginId) await removePluginCgroups(pluginId);
  });

  it('is enabled, as network and IPAM driver, with a rootfs built from this machine', async () => {
    expect(await docker('plugin', 'inspect', '-f', '{{.Enabled}} {{json .Config.Interface.Types}}', PLUGIN)).toBe(
      'true ["docker.networkdriver/1.0","docker.ipamdriver/1.0"]',
    );
    const megabytes = Number((await run('du', ['-sm', path.join(BUILD_DIR, 'rootfs')], 30_000)).split(/\s/)[0]);
    expect(megabytes).toBeLessThan(MAX_ROOTFS_MB);
  });

  it('creates a network with the plugin as driver and IPAM driver', async () => {
    await docker('network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', SUBNET, NET);
    expect(await docker('network', 'inspect', '-f', '{{.Driver}} {{.IPAM.Driver}}', NET)).toBe(`${PLUGIN} ${PLUGIN}`);
  });

  it('gives two containers addresses in the subnet, and they ping each other', async () => {
    await runDetached('pc1');
    await runDetached('pc2');
    const [ip1, ip2] = [await lab!.containerIp('h1', 'pc1'), await lab!.containerIp('h1', 'pc2')];
    expect(ip1).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(ip2).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(ip2).not.toBe(ip1);
    expect(await ping('pc1', ip2)).toBe('ok');
    expect(await ping('pc2', ip1)).toBe('ok');
  });

  it('programs the lab host: sysctls through its /proc/sys/net mount, state in /var/lib/sluice', async () => {
    expect(await lab!.execOk('h1', ['cat', '/proc/sys/net/ipv4/ip_forward'])).toBe('1');
    const endpoint = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").EndpointID}}`, 'pc1');
    const veth = (await lab!.execOk('h1', ['ip', '-o', 'link'])).match(new RegExp(`\\d+: (slv${endpoint.slice(0, 11)})[@:]`))?.[1];
    expect(veth).toBeDefined();
    expect(await lab!.execOk('h1', ['cat', `/proc/sys/net/ipv4/conf/${veth}/proxy_arp`])).toBe('1');
    expect(await lab!.execOk('h1', ['iptables-save', '-t', 'filter'])).toContain('-j SLUICE-FORWARD');
    expect(await lab!.execOk('h1', ['cat', '/var/lib/sluice/state.json'])).toContain(endpoint);
  });

  it('refuses docker plugin disable while the network exists', async () => {
    const r = await lab!.docker('h1', 'plugin', 'disable', PLUGIN);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/in use/);
    expect(await docker('plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN)).toBe('true');
  });

  it('keeps the containers connected across a plugin restart (it finds its networks by its own driver name)', async () => {
    const synced = await inSyncLines();
    expect(synced).toBeGreaterThan(0);
    await docker('plugin', 'disable', '-f', PLUGIN);
    await docker('plugin', 'enable', '--timeout', '60', PLUGIN);
    // The restarted agent reconciles with Docker before it reports "in sync" (after its socket is
    // up and a confirm delay). Looking for its networks by the driver name "sluice" instead of the
    // plugin's name would find none and remove every endpoint: SLUICE_DRIVER_NAME gives the name.
    await eventually(async () => expect(await inSyncLines()).toBe(synced + 1), 60_000, 250);
    expect(await ping('pc1', await lab!.containerIp('h1', 'pc2'))).toBe('ok');
    expect(await dockerdLog()).not.toMatch(/Docker has no container for it/);
  });

  it('is disabled and removed once its network is gone', async () => {
    await docker('rm', '-f', 'pc1', 'pc2');
    await docker('network', 'rm', NET);
    await docker('plugin', 'disable', PLUGIN);
    await docker('plugin', 'rm', PLUGIN);
    expect(await docker('plugin', 'ls', '--format', '{{.Name}}')).not.toContain(PLUGIN);
  });
});
