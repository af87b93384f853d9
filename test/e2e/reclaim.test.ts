// Dead hosts, automatically: a host whose agent is killed loses its block of a
// small subnet to the surviving host after the grace period, and comes back fenced.
import { pings } from '../helpers/probe';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually as retry } from '../helpers/eventually';

jest.setTimeout(600_000);

const NET = 'small';
// Two /30 blocks: once each host holds one, nobody gets a second until a reclaim frees one.
const SUBNET = '10.77.0.0/29';
const AGENT_FLAGS = ['--grace-period', '1', '--resync-interval', '2'];

describe('reclaiming a dead host', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'reclaim', hosts: 2 });
    for (const h of lab.hosts) {
      await lab.agentStop(h);
      await lab.agentStart(h, ...AGENT_FLAGS);
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, '--ipam-opt', 'block-size=30', NET);
    }
  });
  afterAll(async () => {
    await lab?.down();
  });

  const run = (host: string, name: string) =>
    lab.docker(host, 'run', '-d', '--init', '--name', name, '--net', NET, TEST_IMAGE, 'sleep', '3600');

  it('gives the dead host\'s block to the other host after the grace period, and fences the host when it comes back', async () => {
    expect((await run('h1', 'stale')).code).toBe(0);
    const staleIp = await lab.containerIp('h1', 'stale');
    // h2 fills its own block; the subnet's other block is h1's.
    let n = 0;
    while ((await run('h2', `b${n}`)).code === 0) n++;
    expect(n).toBeGreaterThan(0);
    const peerIp = await lab.containerIp('h2', 'b0');
    // Positive control for the fencing below: the container reaches h2 while its host is a member.
    expect(await pings(lab, 'h1', 'stale', peerIp, { timeoutS: 2 })).toBe('ok');

    // h1's agent dies; its container keeps running.
    await lab.agentStop('h1', 'KILL');
    let takerIp = '';
    await retry(async () => {
      await lab.docker('h2', 'rm', '-f', 'taker');
      expect((await run('h2', 'taker')).code).toBe(0);
      takerIp = await lab.containerIp('h2', 'taker');
    }, 180_000, 2000);
    // The block h1 held is now h2's: the taker's address is in it.
    expect(takerIp.split('.').slice(0, 3)).toEqual(staleIp.split('.').slice(0, 3));
    expect(Math.floor(Number(takerIp.split('.')[3]) / 4)).toBe(Math.floor(Number(staleIp.split('.')[3]) / 4));
    expect((await lab.sluice('h2', 'status')).stdout).toMatch(/h1\s+dead \(last seen [^)]+\), blocks reclaimed by h2 at /);

    // h1 comes back: fenced.
    await lab.agentStart('h1', ...AGENT_FLAGS);
    await retry(async () => expect((await lab.sluice('h1', 'status')).stdout).toMatch(/h1\s+alive, fenced since \S+: blocks reclaimed by h2 at /), 30_000, 500);
    const h2Ip = await lab.hostIp('h2');
    await retry(async () => expect(await lab.execOk('h1', ['ip', 'route', 'get', takerIp])).toContain(`via ${h2Ip}`), 30_000, 500);
    expect(await lab.execOk('h1', ['ip', 'route', 'get', staleIp])).toContain(`via ${h2Ip}`);
    // The stale container lost its network, and the log says why.
    expect(await pings(lab, 'h1', 'stale', peerIp, { timeoutS: 2 })).toMatch(/^error: /);
    expect(await lab.dockerOk('h1', 'exec', 'stale', 'ip', '-o', '-4', 'addr')).not.toContain(staleIp);
    const agentLog = (await lab.exec('h1', ['cat', `/run/sluice-lab/reclaim/h1/agent.log`])).stdout;
    expect(agentLog).toMatch(/fenced: removing slv[0-9a-f]{11}: its endpoint and address were released when h2 reclaimed this node/);
  });
});
