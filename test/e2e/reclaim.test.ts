// Dead hosts, automatically: a dead host loses its block of a small subnet to the surviving host
// after the grace period, and comes back fenced. Two deaths: the agent alone (its containers keep
// running and lose their network when it comes back), and the whole host (agent, dockerd,
// containerd, shims and containers killed at once, as in a crash).
import { pings } from '../helpers/probe';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually as retry } from '../helpers/eventually';

jest.setTimeout(600_000);

const NET = 'small';
// Four /30 blocks: h1 takes two, h2 the other two, and nobody gets another until a reclaim frees
// h1's: then h2 takes one and the other is left for h1 when it comes back.
const SUBNET = '10.77.0.0/28';
const AGENT_FLAGS = ['--grace-period', '1', '--resync-interval', '2'];

/** The /30 block an address of SUBNET is in. */
const blockOf = (ip: string): string => `${ip.split('.').slice(0, 3).join('.')}.${Math.floor(Number(ip.split('.')[3]) / 4) * 4}/30`;

describe.each([
  ['its agent', 'agent'],
  ['the whole host', 'host'],
] as const)('reclaiming a host when %s dies', (_what, death) => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: `reclaim-${death}`, hosts: 2 });
    for (const h of lab.hosts) {
      await lab.agentStop(h);
      await lab.agentStart(h, ...AGENT_FLAGS);
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, '--ipam-opt', 'block-size=30', NET);
    }
  });
  afterAll(async () => {
    await lab?.down();
  });

  const run = (host: string, name: string, ...opts: string[]) =>
    lab.docker(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...opts, TEST_IMAGE, 'sleep', '3600');

  it('gives the dead host\'s block to the other host after the grace period, and fences the host when it comes back', async () => {
    // --restart always: dockerd brings it back by itself if it can.
    expect((await run('h1', 'stale', '--restart', 'always')).code).toBe(0);
    const staleIp = await lab.containerIp('h1', 'stale');
    const h1Blocks = new Set([blockOf(staleIp)]);
    for (let i = 0; h1Blocks.size < 2; i++) {
      expect((await run('h1', `s${i}`)).code).toBe(0);
      h1Blocks.add(blockOf(await lab.containerIp('h1', `s${i}`)));
    }
    // h2 fills the rest of the subnet.
    let n = 0;
    while ((await run('h2', `b${n}`)).code === 0) n++;
    expect(n).toBeGreaterThan(0);
    const peerIp = await lab.containerIp('h2', 'b0');
    // Positive control for the fencing below: the container reaches h2 while its host is a member.
    expect(await pings(lab, 'h1', 'stale', peerIp, { timeoutS: 2 })).toBe('ok');

    await lab.agentStop('h1', 'KILL');
    if (death === 'host') await lab.dockerdStop('h1', 'KILL');
    let takerIp = '';
    await retry(async () => {
      await lab.docker('h2', 'rm', '-f', 'taker');
      expect((await run('h2', 'taker')).code).toBe(0);
      takerIp = await lab.containerIp('h2', 'taker');
    }, 180_000, 2000);
    // A block h1 held is now h2's: the taker's address is in it.
    expect(h1Blocks).toContain(blockOf(takerIp));
    expect((await lab.sluice('h2', 'status')).stdout).toMatch(/h1\s+dead \(last seen [^)]+\), blocks reclaimed by h2 at /);

    // h1 comes back (its dockerd first, as a booting host would start it): fenced.
    if (death === 'host') await lab.dockerdStart('h1');
    await lab.agentStart('h1', ...AGENT_FLAGS);
    await retry(async () => expect((await lab.sluice('h1', 'status')).stdout).toMatch(/h1\s+alive, fenced since \S+: blocks reclaimed by h2 at /), 30_000, 500);
    const h2Ip = await lab.hostIp('h2');
    await retry(async () => expect(await lab.execOk('h1', ['ip', 'route', 'get', takerIp])).toContain(`via ${h2Ip}`), 30_000, 500);

    // The stale container lost its network.
    if (death === 'agent') {
      // It kept running, and the log says why its network went.
      expect(await pings(lab, 'h1', 'stale', peerIp, { timeoutS: 2 })).toMatch(/^error: /);
      expect(await lab.dockerOk('h1', 'exec', 'stale', 'ip', '-o', '-4', 'addr')).not.toContain(staleIp);
      const agentLog = (await lab.exec('h1', ['cat', `/run/sluice-lab/${lab.name}/h1/agent.log`])).stdout;
      expect(agentLog).toMatch(/fenced: removing slv[0-9a-f]{11}: its endpoint and address were released when h2 reclaimed this node/);
    } else {
      // Restarted before its agent answered, dockerd could not connect it: it stays exited, its old endpoint gone.
      expect(await lab.dockerOk('h1', 'inspect', '-f', '{{.State.Status}}', 'stale')).toBe('exited');
      expect(await pings(lab, 'h1', 'stale', peerIp, { timeoutS: 2 })).toMatch(/^error: .*is not running/);
      // Started again, it gets an address of h1's new block, never the one h2's taker holds.
      await lab.dockerOk('h1', 'start', 'stale');
      const restartedIp = await lab.containerIp('h1', 'stale');
      expect(blockOf(restartedIp)).not.toBe(blockOf(takerIp));
      expect(await pings(lab, 'h1', 'stale', takerIp, { timeoutS: 2 })).toBe('ok');
    }

    // Positive control: a new container on h1 gets a new block and reaches h2's containers, the taker too.
    expect((await run('h1', 'fresh')).code).toBe(0);
    const freshIp = await lab.containerIp('h1', 'fresh');
    expect(blockOf(freshIp)).not.toBe(blockOf(takerIp));
    expect(await pings(lab, 'h1', 'fresh', peerIp, { timeoutS: 2 })).toBe('ok');
    expect(await pings(lab, 'h1', 'fresh', takerIp, { timeoutS: 2 })).toBe('ok');
  });
});
