// IPv6 TCP between two containers of a dual-stack network on different hosts, against IPv4
// between the same two containers, interleaved (iperf3, one stream): the same path either way,
// host-gw on the flat lab and VXLAN across the routed lab's router.
import type { Lab } from '../../test/helpers/lab';
import type { LabKey } from '../labs';
import { IMAGE, containerCommand, containerPid, dockerOk, removeContainers } from '../labs';
import type { Background } from '../proc';
import { figure } from '../report';
import type { Context, Scenario } from '../scenario';
import { median, ratios } from '../stats';
import { iperf3, iperf3Server } from './throughput';

const ROUNDS = 5;
const PORT = 5204;
const NET6 = 'tp6net';
/** Issue 13: IPv6 within 5 % of IPv4 on the same path. */
const TARGET = { op: '>=', limit: 0.95 } as const;

async function addresses(lab: Lab, host: string, name: string): Promise<{ v4: string; v6: string }> {
  const of = (field: string) => dockerOk(lab, host, 'inspect', '-f', `{{(index .NetworkSettings.Networks "${NET6}").${field}}}`, name);
  return { v4: await of('IPAddress'), v6: await of('GlobalIPv6Address') };
}

async function measure(ctx: Context, key: LabKey, mode: 'host-gw' | 'vxlan'): Promise<void> {
  const lab = await ctx.lab(key);
  let server: Background | undefined;
  try {
    for (const host of ['h1', 'h2']) {
      await dockerOk(lab, host, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--ipv6', '--subnet', '10.98.0.0/16', '--subnet', 'fd00:98::/64', NET6);
    }
    await dockerOk(lab, 'h1', 'run', '-d', '--init', '--name', 'tp6-client', '--net', NET6, IMAGE, 'sleep', '3600');
    await dockerOk(lab, 'h2', 'run', '-d', '--init', '--name', 'tp6-server', '--net', NET6, IMAGE, 'sleep', '3600');
    const to = await addresses(lab, 'h2', 'tp6-server');
    // One iperf3 server, listening on both families.
    server = iperf3Server('iperf3 in tp6-server', containerCommand(await containerPid(lab, 'h2', 'tp6-server'), []), PORT);
    const client = containerCommand(await containerPid(lab, 'h1', 'tp6-client'), []);
    const runs = { v4: () => iperf3(client, to.v4, PORT), v6: () => iperf3(client, to.v6, PORT) };
    const results = { v4: [] as number[], v6: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      ctx.log(`${mode} round ${round + 1}/${ROUNDS}`);
      // Each round starts with the other family, so drifting load falls on both alike.
      for (const family of round % 2 === 0 ? (['v4', 'v6'] as const) : (['v6', 'v4'] as const)) results[family].push(await runs[family]());
    }
    ctx.add(figure('throughput-ipv6', `${mode}: container to container over IPv4 median`, median(results.v4), 'Gbit/s'));
    ctx.add(figure('throughput-ipv6', `${mode}: container to container over IPv6 median`, median(results.v6), 'Gbit/s'));
    ctx.add(figure('throughput-ipv6', `${mode}: median of paired ratios IPv6/IPv4`, median(ratios(results.v6, results.v4)), 'ratio', TARGET));
  } finally {
    await server?.stop();
    await removeContainers(lab, 'h1', ['tp6-client']);
    await removeContainers(lab, 'h2', ['tp6-server']);
    for (const host of ['h1', 'h2']) await lab.docker(host, 'network', 'rm', NET6);
  }
}

export const throughputIpv6: Scenario = {
  name: 'throughput-ipv6',
  labs: ['flat2', 'routed2'],
  async run(ctx) {
    await measure(ctx, 'flat2', 'host-gw');
    await measure(ctx, 'routed2', 'vxlan');
  },
};
