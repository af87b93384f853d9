// Two hosts on one etcd racing `docker network create` with overlapping
// subnets: one create wins, the other is refused, every time.
import { Lab, TEST_IMAGE } from '../helpers/lab';

jest.setTimeout(600_000);

const ROUNDS = 20;

function create(lab: Lab, host: string, subnet: string, name: string) {
  return lab.docker(host, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', subnet, name);
}

describe('overlapping docker network create raced on two hosts', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'poolrace', hosts: 2 });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it(`never succeeds twice in ${ROUNDS} rounds`, async () => {
    const rounds: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh part of 10/8 each round, so no round depends on the removal of the last one.
      const octet = 160 + round;
      const [wide, narrow] = round % 2 === 0 ? [`10.${octet}.8.0/21`, `10.${octet}.8.0/22`] : [`10.${octet}.0.0/16`, `10.${octet}.200.0/24`];
      const [h1, h2] = await Promise.all([create(lab, 'h1', wide, `wide${round}`), create(lab, 'h2', narrow, `narrow${round}`)]);
      const refused = [h1, h2].filter((r) => r.code !== 0);
      rounds.push(`${wide} vs ${narrow}: ${2 - refused.length} created${refused.map((r) => `; refused: ${r.stderr.trim()}`).join('')}`);
      if (h1.code === 0) await lab.dockerOk('h1', 'network', 'rm', `wide${round}`);
      if (h2.code === 0) await lab.dockerOk('h2', 'network', 'rm', `narrow${round}`);
    }
    expect(rounds.filter((r) => !/: 1 created; refused: .*overlaps sluice network/.test(r))).toEqual([]);
  });

  it('makes the same subnet raced on two hosts one network, with distinct container addresses', async () => {
    const results = await Promise.all(['h1', 'h2'].map((h) => create(lab, h, '10.200.0.0/16', 'same')));
    expect(results.map((r) => r.code)).toEqual([0, 0]);
    const ips = await Promise.all(
      ['h1', 'h2'].map(async (h) => {
        await lab.dockerOk(h, 'run', '-d', '--init', '--name', `c-${h}`, '--net', 'same', TEST_IMAGE, 'sleep', '3600');
        return lab.containerIp(h, `c-${h}`);
      }),
    );
    expect(new Set(ips).size).toBe(2);
    expect(ips.every((ip) => ip.startsWith('10.200.') && ip !== '10.200.0.1')).toBe(true);
    const networks = (await lab.sluice('h1', 'network', 'ls')).stdout;
    expect(networks.match(/10\.200\.0\.0\/16/g)).toHaveLength(1);
  });
});
