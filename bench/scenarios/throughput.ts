// TCP throughput container to container across two hosts against host to host over the same
// underlay (iperf3, interleaved): host-gw on a flat lab, VXLAN across the routed lab's router.
import type { Lab } from '../../test/helpers/lab';
import type { LabKey } from '../labs';
import { containerCommand, containerPid, netnsCommand, removeContainers, startContainer } from '../labs';
import { Background, run, sleep } from '../proc';
import { figure, type Target } from '../report';
import type { Context, Scenario } from '../scenario';
import { median, ratios } from '../stats';

const ROUNDS = 3;
const HOST_PORT = 5202;
const CONTAINER_PORT = 5201;

/** Received Gbit/s of one iperf3 run (5 s after a 1 s warm-up). */
export async function iperf3(command: [string, string[]], server: string, port: number): Promise<number> {
  const [cmd, args] = command;
  let problem = '';
  // The server may need a moment after starting; iperf3 gives up at once when nobody listens.
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await run(cmd, [...args, 'iperf3', '-c', server, '-p', String(port), '-t', '5', '-O', '1', '-J'], 60_000);
    let result: { error?: string; end?: { sum_received?: { bits_per_second?: number } } } = {};
    try {
      result = JSON.parse(r.stdout) as typeof result;
    } catch {
      // not JSON: reported below
    }
    const bps = result.end?.sum_received?.bits_per_second;
    if (r.code === 0 && bps !== undefined) return bps / 1e9;
    problem = result.error ?? (r.stderr.trim() || r.stdout.slice(0, 300));
    await sleep(300);
  }
  throw new Error(`iperf3 to ${server}:${port}: ${problem}`);
}

/** An iperf3 server, in a host's or a container's network namespace. */
export function iperf3Server(what: string, command: [string, string[]], port: number): Background {
  const [cmd, args] = command;
  return new Background(what, cmd, [...args, 'iperf3', '-s', '-p', String(port)]);
}

/** A bare kernel VXLAN pair between h1 and h2 (no sluice), as the tunnel's own baseline; returns h2's end. */
async function bareVxlan(lab: Lab): Promise<string> {
  const [h1, h2] = [await lab.hostIp('h1'), await lab.hostIp('h2')];
  const ends = [
    { host: 'h1', local: h1, remote: h2, address: '192.168.77.1/24' },
    { host: 'h2', local: h2, remote: h1, address: '192.168.77.2/24' },
  ];
  for (const e of ends) {
    await lab.execOk(e.host, ['ip', 'link', 'add', 'bench-vx', 'mtu', '1450', 'type', 'vxlan', 'id', '99', 'local', e.local, 'remote', e.remote, 'dstport', '4799']);
    await lab.execOk(e.host, ['ip', 'addr', 'add', e.address, 'dev', 'bench-vx']);
    await lab.execOk(e.host, ['ip', 'link', 'set', 'bench-vx', 'up']);
  }
  return '192.168.77.2';
}

async function measure(ctx: Context, key: LabKey, mode: 'host-gw' | 'vxlan', routeTo: (h2: string) => RegExp, target: Target): Promise<void> {
  const lab: Lab = await ctx.lab(key);
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
    const h1 = await netnsCommand(lab, 'h1', []);
    const runs: Record<string, () => Promise<number>> = {
      host: () => iperf3(h1, h2, HOST_PORT),
      container: () => iperf3(containerCommand(clientPid, []), serverIp, CONTAINER_PORT),
    };
    if (mode === 'vxlan') {
      const tunnelEnd = await bareVxlan(lab);
      runs.bare = () => iperf3(h1, tunnelEnd, HOST_PORT);
    }
    const kinds = Object.keys(runs);
    const results: Record<string, number[]> = Object.fromEntries(kinds.map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round++) {
      ctx.log(`${mode} round ${round + 1}/${ROUNDS}`);
      // Each round starts with another kind, so drifting load falls on all alike.
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(round + k) % kinds.length]!;
        results[kind]!.push(await runs[kind]!());
      }
    }
    const { host = [], container = [], bare } = results;
    ctx.add(figure('throughput', `${mode}: host to host median`, median(host), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: container to container median`, median(container), 'Gbit/s'));
    if (bare) {
      ctx.add(figure('throughput', 'vxlan: bare kernel VXLAN host to host (no sluice) median', median(bare), 'Gbit/s'));
      ctx.add(figure('throughput', 'vxlan: median of paired ratios bare VXLAN/host (the tunnel alone)', median(ratios(bare, host)), 'ratio'));
      ctx.add(figure('throughput', 'vxlan: median of paired ratios container/bare VXLAN (what sluice adds)', median(ratios(container, bare)), 'ratio'));
    }
    ctx.add(figure('throughput', `${mode}: median of paired ratios container/host`, median(ratios(container, host)), 'ratio', target));
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    if (mode === 'vxlan') for (const host of ['h1', 'h2']) await lab.exec(host, ['ip', 'link', 'del', 'bench-vx']);
    await removeContainers(lab, 'h1', ['tp-client']);
    await removeContainers(lab, 'h2', ['tp-server']);
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
