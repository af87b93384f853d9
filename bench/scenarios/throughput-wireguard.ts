// TCP throughput container to container across two hosts through Sluice's WireGuard
// (--encryption wireguard), against host-gw on the same lab, and against a bare WireGuard pair
// between the same hosts (same implementation, no sluice: what Sluice adds). The agents run
// with encryption only for this scenario and are restarted without it at the end.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { generatePrivateKey, publicKeyOf } from '../../src/encryption/keys';
import type { WireguardImplementation } from '../../src/model';
import type { Lab } from '../../test/helpers/lab';
import { containerCommand, containerPid, netnsCommand, removeContainers, startContainer } from '../labs';
import type { Background } from '../proc';
import { figure } from '../report';
import type { Context, Scenario } from '../scenario';
import { median, ratios } from '../stats';
import { iperf3, iperf3Server } from './throughput';

const ROUNDS = 3;
const HOST_PORT = 5202;
const CONTAINER_PORT = 5201;
const BARE_DEVICE = 'bench-wg';
const BARE_PORT = 51830;

/** A client and a server container on h1 and h2, and how to run iperf3 between them. */
async function containerPair(lab: Lab, servers: Background[], route: RegExp, what: string): Promise<() => Promise<number>> {
  await startContainer(lab, 'h1', { name: 'tp-client' });
  const serverIp = await startContainer(lab, 'h2', { name: 'tp-server' });
  const routes = await lab.execOk('h1', ['ip', 'route', 'show', 'proto', '252']);
  if (!route.test(routes)) throw new Error(`h1 does not route to h2's block ${what}:\n${routes}`);
  servers.push(iperf3Server(`iperf3 in tp-server (${what})`, containerCommand(await containerPid(lab, 'h2', 'tp-server'), []), CONTAINER_PORT));
  const client = containerCommand(await containerPid(lab, 'h1', 'tp-client'), []);
  return () => iperf3(client, serverIp, CONTAINER_PORT);
}

async function removePair(lab: Lab): Promise<void> {
  await removeContainers(lab, 'h1', ['tp-client']);
  await removeContainers(lab, 'h2', ['tp-server']);
}

/** A WireGuard pair between h1 and h2 by hand, of the implementation Sluice runs; returns h2's tunnel address. */
async function bareWireguard(ctx: Context, lab: Lab, implementation: WireguardImplementation): Promise<string> {
  const keys = ['h1', 'h2'].map(() => generatePrivateKey());
  const ends = [
    { host: 'h1', key: keys[0]!, peer: publicKeyOf(keys[1]!), peerIp: await lab.hostIp('h2'), address: '192.168.79.1', peerAddress: '192.168.79.2' },
    { host: 'h2', key: keys[1]!, peer: publicKeyOf(keys[0]!), peerIp: await lab.hostIp('h1'), address: '192.168.79.2', peerAddress: '192.168.79.1' },
  ];
  for (const e of ends) {
    const keyFile = path.join(ctx.tmp, `${e.host}-bench-wg.key`);
    writeFileSync(keyFile, e.key, { mode: 0o600 });
    // wireguard-go without -f goes to the background by itself; it ends when its device is deleted.
    await lab.execOk(e.host, implementation === 'kernel' ? ['ip', 'link', 'add', BARE_DEVICE, 'type', 'wireguard'] : ['wireguard-go', BARE_DEVICE]);
    await lab.execOk(e.host, ['wg', 'set', BARE_DEVICE, 'listen-port', String(BARE_PORT), 'private-key', keyFile,
      'peer', e.peer, 'endpoint', `${e.peerIp}:${BARE_PORT}`, 'allowed-ips', `${e.peerAddress}/32`]);
    await lab.execOk(e.host, ['ip', 'address', 'add', `${e.address}/24`, 'dev', BARE_DEVICE]);
    await lab.execOk(e.host, ['ip', 'link', 'set', BARE_DEVICE, 'mtu', '1440', 'up']);
  }
  return '192.168.79.2';
}

async function restartAgents(lab: Lab, ...flags: string[]): Promise<void> {
  for (const host of ['h1', 'h2']) {
    await lab.agentStop(host);
    await lab.agentStart(host, ...flags);
  }
}

export const throughputWireguard: Scenario = {
  name: 'throughput-wireguard',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const servers: Background[] = [];
    const h2 = await lab.hostIp('h2');
    try {
      // host-gw first, on the same lab and hosts.
      const hostGw = await containerPair(lab, servers, new RegExp(`via ${h2.replace(/\./g, '\\.')} dev eth0`), 'by host-gw');
      const plain: number[] = [];
      for (let round = 0; round < ROUNDS; round++) plain.push(await hostGw());
      await Promise.all(servers.splice(0).map((s) => s.stop()));
      await removePair(lab);

      await restartAgents(lab, '--encryption', 'wireguard');
      const { nodes } = JSON.parse(await lab.sluiceOk('h1', 'status', '-o', 'json')) as { nodes: { name: string; wireguard?: { implementation: WireguardImplementation } }[] };
      const implementation = nodes.find((n) => n.name === 'h1')?.wireguard?.implementation;
      if (implementation === undefined) throw new Error('h1 runs without WireGuard after a restart with --encryption wireguard');
      ctx.log(`WireGuard implementation: ${implementation}`);
      const sluice = await containerPair(lab, servers, /dev sluice\.wg/, 'through sluice.wg');
      const tunnelEnd = await bareWireguard(ctx, lab, implementation);
      servers.push(iperf3Server('iperf3 on h2', await netnsCommand(lab, 'h2', []), HOST_PORT));
      const h1 = await netnsCommand(lab, 'h1', []);
      const runs: Record<string, () => Promise<number>> = { sluice, bare: () => iperf3(h1, tunnelEnd, HOST_PORT) };
      const results: Record<string, number[]> = { sluice: [], bare: [] };
      for (let round = 0; round < ROUNDS; round++) {
        ctx.log(`wireguard round ${round + 1}/${ROUNDS}`);
        // Each round starts with another kind, so drifting load falls on both alike.
        for (const kind of round % 2 === 0 ? ['sluice', 'bare'] : ['bare', 'sluice']) results[kind]!.push(await runs[kind]!());
      }
      const label = `wireguard (${implementation})`;
      ctx.add(figure('throughput-wireguard', 'host-gw: container to container median', median(plain), 'Gbit/s'));
      ctx.add(figure('throughput-wireguard', `${label}: container to container median`, median(results.sluice!), 'Gbit/s'));
      ctx.add(figure('throughput-wireguard', `${label}: bare pair host to host (no sluice; TCP sent by the host itself) median`, median(results.bare!), 'Gbit/s'));
      ctx.add(figure('throughput-wireguard', `${label}: container median / host-gw container median`, median(results.sluice!) / median(plain), 'ratio'));
      ctx.add(
        figure('throughput-wireguard', `${label}: median of paired ratios container/bare pair (what sluice adds)`, median(ratios(results.sluice!, results.bare!)), 'ratio', {
          op: '>=',
          limit: 0.95,
        }),
      );
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      for (const host of ['h1', 'h2']) await lab.exec(host, ['ip', 'link', 'del', BARE_DEVICE]);
      await removePair(lab);
      // Back to the lab's own settings for the scenarios after this one.
      await restartAgents(lab);
    }
  },
};
