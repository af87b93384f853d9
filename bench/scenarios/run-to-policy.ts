// From `docker run -d` returning to the new container's policy being in force, across hosts: a
// client on h1 probes (every 5 ms) each new container on h2, in turn of three kinds:
//   web         allowed from the client; probed from the moment `docker run` returns: the time
//               until a SYN first gets to the container is the figure
//   web-early   the same, but probed from before `docker run` starts (as a client retrying a
//               starting service would); shown beside it, as the first packet can meet an
//               unresolved neighbour on h2
//   locked      no ingress at all; probed from before `docker run` starts until a second after
//               it returns: every probe must fail, whenever it was sent
import { HTTPD, IMAGE, NET, containerPid, docker, removeContainers, startContainer } from '../labs';
import { matches } from '../outcome';
import { applyPolicies, removePolicies, writePolicies } from '../policies';
import { Prober, firstMatch } from '../probe';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const KINDS = ['web', 'web-early', 'locked'] as const;
const PER_KIND = 15;
/** Fixed addresses in one block of h2, so probing can start before the container exists. */
const address = (i: number) => `10.96.150.${10 + i}`;

export const runToPolicy: Scenario = {
  name: 'run-to-policy',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const policies = writePolicies(ctx.tmp, 'run-to-policy.yaml', [
      { name: 'bench-locked', selector: "role == 'locked'", ingress: [] },
      { name: 'bench-web', selector: "role == 'web'", ingress: [{ action: 'allow', protocol: 'tcp', from: "role == 'client'", ports: [80] }] },
    ]);
    const names: string[] = [];
    let prober: Prober | undefined;
    try {
      await applyPolicies(lab, policies);
      await startContainer(lab, 'h1', { name: 'rtp-client', labels: { role: 'client' } });
      prober = Prober.open(await containerPid(lab, 'h1', 'rtp-client'));
      // h2 claims the block of the trial addresses, and h1 learns its route, before any trial.
      names.push('rtp-warm');
      await startContainer(lab, 'h2', { name: 'rtp-warm', labels: { role: 'web' }, ip: '10.96.150.2', cmd: HTTPD });
      await prober.start('10.96.150.2', 80);
      if (!firstMatch(await prober.stop({ want: 'open', settleMs: 0, maxMs: 10_000 }), 'open').first) throw new Error('rtp-warm never became reachable');

      const latencies: Record<'web' | 'web-early', number[]> = { web: [], 'web-early': [] };
      let passed = 0;
      let lockedProbes = 0;
      for (let i = 0; i < KINDS.length * PER_KIND; i++) {
        const kind = KINDS[i % KINDS.length]!;
        const name = `rtp-${i}`;
        names.push(name);
        if (kind !== 'web') await prober.start(address(i), 80);
        const role = kind === 'locked' ? 'locked' : 'web';
        const r = await docker(lab, 'h2', 'run', '-d', '--init', '--name', name, '--net', NET, '--label', `role=${role}`, '--ip', address(i), IMAGE, ...HTTPD);
        if (r.code !== 0) throw new Error(`docker run ${name}: ${r.stderr.trim()}`);
        if (kind === 'web') await prober.start(address(i), 80);
        if (kind !== 'locked') {
          const first = firstMatch(await prober.stop({ want: 'reached', settleMs: 0, maxMs: 5000 }), 'reached').first;
          if (!first) throw new Error(`${name} (role=web) was not reachable within 5 s`);
          // In force before `docker run` returned counts as 0.
          latencies[kind].push(Math.max(0, first.start - r.endedAt));
        } else {
          // Stops early on the first probe that got through.
          const probes = await prober.stop({ want: 'reached', settleMs: 0, maxMs: 1000 });
          passed += probes.filter((p) => matches(p.outcome, 'reached')).length;
          lockedProbes += probes.length;
          // Only a server that was really listening makes the failed probes count.
          const served = await docker(lab, 'h2', 'exec', name, 'timeout', '2', 'wget', '-q', '-O-', 'http://127.0.0.1/');
          if (served.code !== 0) throw new Error(`${name}: httpd did not answer inside the container`);
        }
        await removeContainers(lab, 'h2', [name]);
      }
      const { web, 'web-early': early } = latencies;
      ctx.add(figure('run-to-policy', `docker run return → allowed SYN gets in p50 (${web.length} starts)`, percentile(web, 50), 'ms', { op: '<=', limit: 200 }));
      ctx.add(figure('run-to-policy', 'docker run return → allowed SYN gets in p99', percentile(web, 99), 'ms'));
      ctx.add(figure('run-to-policy', `the same, probed from before docker run, p50 (${early.length} starts)`, percentile(early, 50), 'ms'));
      ctx.add(figure('run-to-policy', 'the same, probed from before docker run, p99', percentile(early, 99), 'ms'));
      ctx.add(figure('run-to-policy', `denied connections that passed (${lockedProbes} probes, ${PER_KIND} locked starts)`, passed, 'count', { op: '<=', limit: 0 }));
    } finally {
      await prober?.close();
      await removeContainers(lab, 'h2', names);
      await removeContainers(lab, 'h1', ['rtp-client']);
      await removePolicies(lab, ['bench-locked', 'bench-web']);
    }
  },
};
