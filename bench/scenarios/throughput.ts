// TCP throughput container to container across two hosts against host to host over the same
// underlay (iperf3, interleaved): host-gw on a flat lab, VXLAN across the routed lab's router.
// Each has a baseline without Sluice built by hand in the same lab, so a ratio tells what the
// kernel's own path costs from what Sluice adds: for host-gw a veth pair and a route on each
// host, for VXLAN a bare kernel tunnel.
import type { Lab } from '../../test/helpers/lab';
import type { LabKey } from '../labs';
import { IMAGE, containerCommand, containerPid, dockerOk, netnsCommand, removeContainers, startContainer } from '../labs';
import { Background, run, runOk, sleep } from '../proc';
import { figure, type Target } from '../report';
import type { Context, Scenario } from '../scenario';
import { median, ratios } from '../stats';

const ROUNDS = 5;
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

/** Addresses of the bare veth path's ends: outside Sluice's pools, on veths not named as Sluice's. */
const BARE_VETH = { h1: '192.168.78.1', h2: '192.168.78.2' } as const;

/**
 * What a container on h1 and h2 would have without Sluice: a container of Docker's `none`
 * network, a veth pair into it, a /32 route to it and proxy ARP on its host, a route to the
 * other one via its host; no policy rules of its own, nor Docker's DNS rules in the container.
 * Returns the command running in h1's end and h2's end's address.
 */
async function bareVeth(lab: Lab): Promise<{ client: [string, string[]]; server: [string, string[]]; serverIp: string }> {
  const ends = [
    { host: 'h1', peer: 'h2', name: 'tp-bare-client' },
    { host: 'h2', peer: 'h1', name: 'tp-bare-server' },
  ] as const;
  const commands: [string, string[]][] = [];
  for (const { host, peer, name } of ends) {
    await dockerOk(lab, host, 'run', '-d', '--init', '--name', name, '--net', 'none', IMAGE, 'sleep', '3600');
    const pid = await containerPid(lab, host, name);
    const [address, peerAddress] = [BARE_VETH[host], BARE_VETH[peer]];
    // The host end goes with the container's namespace; the route via the peer is removed by bareVethDown.
    for (const cmd of [
      ['ip', 'link', 'add', 'bench-bv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pid],
      ['ip', 'link', 'set', 'bench-bv', 'up'],
      ['ip', 'route', 'add', `${address}/32`, 'dev', 'bench-bv'],
      ['ip', 'route', 'add', `${peerAddress}/32`, 'via', await lab.hostIp(peer)],
      ['sysctl', '-qw', 'net.ipv4.conf.bench-bv.proxy_arp=1', 'net.ipv4.neigh.bench-bv.proxy_delay=0'],
    ]) {
      await lab.execOk(host, cmd);
    }
    const inside = (cmd: string[]): [string, string[]] => containerCommand(pid, cmd);
    for (const cmd of [
      ['ip', 'link', 'set', 'lo', 'up'],
      ['ip', 'addr', 'add', `${address}/32`, 'dev', 'eth0'],
      ['ip', 'link', 'set', 'eth0', 'up'],
      ['ip', 'route', 'add', 'default', 'dev', 'eth0'],
    ]) {
      await runOk(...inside(cmd));
    }
    commands.push(inside([]));
  }
  return { client: commands[0]!, server: commands[1]!, serverIp: BARE_VETH.h2 };
}

async function bareVethDown(lab: Lab): Promise<void> {
  await lab.exec('h1', ['ip', 'route', 'del', `${BARE_VETH.h2}/32`]);
  await lab.exec('h2', ['ip', 'route', 'del', `${BARE_VETH.h1}/32`]);
  await removeContainers(lab, 'h1', ['tp-bare-client']);
  await removeContainers(lab, 'h2', ['tp-bare-server']);
}

/** A path without Sluice between h1 and h2, built by hand in the lab, measured beside the others. */
interface Baseline {
  /** As figure names say it, e.g. "bare veth". */
  name: string;
  /** Sets it up, with its iperf3 server on `port`; returns one run over it and what takes it down. */
  up(lab: Lab, servers: Background[], port: number): Promise<{ run: () => Promise<number>; down: () => Promise<void> }>;
}

const BARE_PORT = 5203;

const bareVethBaseline: Baseline = {
  name: 'bare veth',
  async up(lab, servers, port) {
    const bare = await bareVeth(lab).catch(async (err: unknown) => {
      await bareVethDown(lab);
      throw err;
    });
    servers.push(iperf3Server('iperf3 in tp-bare-server', bare.server, port));
    return { run: () => iperf3(bare.client, bare.serverIp, port), down: () => bareVethDown(lab) };
  },
};

const bareVxlanBaseline: Baseline = {
  name: 'bare VXLAN',
  async up(lab, _servers, port) {
    const down = async (): Promise<void> => {
      for (const host of ['h1', 'h2']) await lab.exec(host, ['ip', 'link', 'del', 'bench-vx']);
    };
    // Its server is h2's own, listening on every address.
    const tunnelEnd = await bareVxlan(lab).catch(async (err: unknown) => {
      await down();
      throw err;
    });
    const h1 = await netnsCommand(lab, 'h1', []);
    return { run: () => iperf3(h1, tunnelEnd, port), down };
  },
};

interface Targets {
  /** Of the median of paired ratios container/host. */
  containerHost?: Target;
  /** Of the median of paired ratios container/baseline. */
  containerBaseline?: Target;
}

async function measure(ctx: Context, key: LabKey, mode: 'host-gw' | 'vxlan', routeTo: (h2: string) => RegExp, baseline: Baseline, targets: Targets): Promise<void> {
  const lab: Lab = await ctx.lab(key);
  const servers: Background[] = [];
  let baselineDown: (() => Promise<void>) | undefined;
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
    const bare = await baseline.up(lab, servers, mode === 'vxlan' ? HOST_PORT : BARE_PORT);
    baselineDown = bare.down;
    const runs: Record<string, () => Promise<number>> = {
      host: () => iperf3(h1, h2, HOST_PORT),
      container: () => iperf3(containerCommand(clientPid, []), serverIp, CONTAINER_PORT),
      bare: bare.run,
    };
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
    const { host = [], container = [], bare: alone = [] } = results;
    const b = baseline.name;
    ctx.add(figure('throughput', `${mode}: host to host median`, median(host), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: container to container median`, median(container), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: ${b} host to host (no sluice) median`, median(alone), 'Gbit/s'));
    ctx.add(figure('throughput', `${mode}: median of paired ratios ${b}/host (the kernel's path alone)`, median(ratios(alone, host)), 'ratio'));
    ctx.add(figure('throughput', `${mode}: median of paired ratios container/${b} (what sluice's path adds)`, median(ratios(container, alone)), 'ratio', targets.containerBaseline));
    ctx.add(figure('throughput', `${mode}: median of paired ratios container/host`, median(ratios(container, host)), 'ratio', targets.containerHost));
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await baselineDown?.();
    await removeContainers(lab, 'h1', ['tp-client']);
    await removeContainers(lab, 'h2', ['tp-server']);
  }
}

export const throughput: Scenario = {
  name: 'throughput',
  labs: ['flat2', 'routed2'],
  async run(ctx) {
    // Targets of issue 11: host-gw against the host's own path; VXLAN against the tunnel alone,
    // which here already costs most of the underlay's speed.
    const hostGwRoute = (h2: string) => new RegExp(`via ${h2.replace(/\./g, '\\.')} dev eth0`);
    await measure(ctx, 'flat2', 'host-gw', hostGwRoute, bareVethBaseline, { containerHost: { op: '>=', limit: 0.85 } });
    await measure(ctx, 'routed2', 'vxlan', () => /dev sluice\.vxlan/, bareVxlanBaseline, { containerBaseline: { op: '>=', limit: 0.95 } });
  },
};
