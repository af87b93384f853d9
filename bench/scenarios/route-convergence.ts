// From a block claim landing in etcd (a fake peer's, written as an agent writes it) to the
// route to it appearing on h2, as `ip -ts monitor route` in h2's namespace stamps it.
import { NET_KEY, etcdTool, netnsCommand } from '../labs';
import { Background, sleep } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const TRIALS = 50;
const PEER = 'bench-peer';
/** On the flat underlay's link, unused by the lab: routes to it are host-gw. */
const PEER_IP = '10.250.0.200';
const FIRST_BLOCK_IP = '10.96.200.0';
const GAP_MS = 300;

/** `[2026-11-26T03:38:03.991286]` (local time) to epoch ms. */
function monitorTime(stamp: string): number {
  const m = /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)$/.exec(stamp);
  if (!m) throw new Error(`cannot read ip monitor time stamp ${stamp}`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s).getTime() + Number(`0.${m[7]}`) * 1000;
}

export const routeConvergence: Scenario = {
  name: 'route-convergence',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const seen = new Map<string, number>();
    const added = new RegExp(`^\\[(\\S+)\\] (\\S+) via ${PEER_IP.replace(/\./g, '\\.')} `);
    const [cmd, args] = await netnsCommand(lab, 'h2', ['ip', '-ts', 'monitor', 'route']);
    const monitor = new Background('ip monitor on h2', cmd, args, (line) => {
      const m = added.exec(line);
      if (m && !seen.has(m[2]!)) seen.set(m[2]!, monitorTime(m[1]!));
    });
    try {
      await sleep(500);
      if (!monitor.alive) throw new Error(`ip monitor did not start: ${monitor.stderr}`);
      // One claim more than measured: the first also meets the new peer's first route lookup.
      const claims = (await etcdTool(lab, ['claim-blocks', PEER, PEER_IP, NET_KEY, FIRST_BLOCK_IP, String(TRIALS + 1), String(GAP_MS)])) as {
        block: string;
        at: number;
      }[];
      await sleep(1000);
      const measured = claims.slice(1);
      const latencies = measured.flatMap((c) => {
        const at = seen.get(c.block);
        return at === undefined ? [] : [at - c.at];
      });
      const missing = measured.length - latencies.length;
      if (latencies.length === 0) throw new Error(`no route to any of ${measured.length} claimed blocks appeared on h2`);
      ctx.add(figure('route-convergence', `claim → route on peer p50 (${latencies.length} trials)`, percentile(latencies, 50), 'ms', { op: '<=', limit: 50 }));
      ctx.add(figure('route-convergence', 'claim → route on peer p99', percentile(latencies, 99), 'ms'));
      ctx.add(figure('route-convergence', 'claims whose route never appeared (within 1 s of the last)', missing, 'count', { op: '<=', limit: 0 }));
    } finally {
      await monitor.stop();
      await etcdTool(lab, ['remove-node', PEER]);
    }
  },
};
