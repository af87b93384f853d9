// TCP throughput container to container across two hosts against host to host over the same
// underlay (iperf3, interleaved): host-gw on a flat lab, VXLAN across the routed lab's router.
import type { Lab } from '../../test/helpers/lab';
import type { LabKey } from '../labs';
import { containerCommand, containerPid, netnsCommand, removeContainers, startContainer } from '../labs';
import { Background, runOk, sleep } from '../proc';
import { figure, type Target } from '../report';
import type { Context, Scenario } from '../scenario';
import { median, ratios } from '../stats';

const ROUNDS = 3;
const HOST_PORT = 5202;
const CONTAINER_PORT = 5201;

/** Received Gbit/s of one iperf3 run (5 s after a 1 s warm-up). */
export async function iperf3(command: [string, string[]], server: string, port: number): Promise<number> {
  const [cmd, args] = command;
  let last = '';
  // The server may need a moment after starting; iperf3 exits at once when nobody listens.
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await runOk(cmd, [...args, 'iperf3', '-c', server, '-p', String(port), '-t', '5', '-O', '1', '-J'], 60_000).catch((err: Error) => err);
    if (!(r instanceof Error)) {
      const result = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
      const bps = result.end?.sum_received?.bits_per_second;
      if (bps === undefined) throw new Error(`iperf3 to ${server}:${port} gave no result: ${r.stdout.slice(0, 300)}`);
      return bps / 1e9;
    }
    last = r.message;
    await sleep(300);
  }
  throw new Error(last);
}

/** An iperf3 server, in a host's or a container's network namespace. */
export function iperf3Server(what: string, command: [string, string[]], port: number): Background {
  const [cmd, args] = command;
  return new Background(what, cmd, [...args, 'iperf3', '-s', '-p', String(port)]);
}

async function measure(ctx: Context, key: LabKey, mode: string, routeTo: (h2: string) => RegExp, target: Target): Promise<void> {
  const lab: Lab = await ctx.lab(key);
  const names = ['tp-client', 'tp-server'];
  const servers: Background[] = [];
  try {
    await startContainer(lab, 'h1', { name: 'tp-client' });
    const serverIp = await startContainer(lab, 'h2', { name: 'tp-server' });
    const h2 = await lab.hostIp('h2');
    const routes = await lab.execOk('h1', ['ip', 'route', 'show', 'proto', '252']);
    if (!routeTo(h2).test(routes)) throw new Error(`h1 does not route to h2's block by ${mode}:\n${routes}`);
    const clientPid = await containerPid(lab, 'h1', 'tp-client');
    servers.push(iperf3Server('iperf3 on h2', await netnsCommand(lab, 'h2', []), HOST_PORT));
    servers.push(iperf3Server('iperf3 in tp-server', containerCommand(await containerPid(lab, 'h2', 'tp-server'), []), CONTAINER_PORT));
    const hostRun = async () => iperf3(await netnsCommand(lab, 'h1', []), h2, HOST_PORT);
    const containerRun = () => iperf3(containerCommand(clientPid, []), serverIp, CONTAINER_PORT);
    const hosts: number[] = [];
    const containers: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ctx.log(`${mode} round ${round + 1}/${ROUNDS}`);
      if (round % 2 === 0) {
        hosts.push(await hostRun());
        containers.push(await containerRun());
      } else {
        containers.push(await containerRun());
        hosts.push(await hostRun());
      }
    }
    ctx.add(figure('throughput', `${mode}: host to host median`, median(hosts), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: container to container median`, median(containers), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: median of paired ratios container/host`, median(ratios(containers, hosts)), 'ratio', target));
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await removeContainers(lab, 'h1', names.slice(0, 1));
    await removeContainers(lab, 'h2', names.slice(1));
  }
}

export const throughput: Scenario = {
  name: 'throughput',
  labs: ['flat2', 'routed2'],
  async run(ctx) {
    await measure(ctx, 'flat2', 'host-gw', (h2) => new RegExp(`via ${h2.replace(/\./g, '\\.')} dev eth0`), { op: '>=', limit: 0.9 });
    await measure(ctx, 'routed2', 'vxlan', () => /dev sluice\.vxlan/, { op: '>=', limit: 0.7 });
  },
};
