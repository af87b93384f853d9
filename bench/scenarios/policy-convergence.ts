// From `sluice policy apply` returning to the connection outcome flipping, as seen by a client
// on h1 probing a web server on h2 every 5 ms: the policy alternates between allowing
// role=client → role=web on TCP 80 and denying all ingress to role=web.
import { HTTPD, containerPid, removeContainers, startContainer } from '../labs';
import type { Want } from '../outcome';
import { applyPolicies, removePolicies, writePolicies } from '../policies';
import { Prober, firstMatch } from '../probe';
import { nowMs } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const TRIALS = 30;
const POLICY = 'bench-web';

export const policyConvergence: Scenario = {
  name: 'policy-convergence',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const allow = writePolicies(ctx.tmp, 'web-allow.yaml', [
      { name: POLICY, selector: "role == 'web'", ingress: [{ action: 'allow', protocol: 'tcp', from: "role == 'client'", ports: [80] }] },
    ]);
    const deny = writePolicies(ctx.tmp, 'web-deny.yaml', [{ name: POLICY, selector: "role == 'web'", ingress: [] }]);
    let prober: Prober | undefined;
    try {
      const web = await startContainer(lab, 'h2', { name: 'pc-web', labels: { role: 'web' }, cmd: HTTPD });
      await startContainer(lab, 'h1', { name: 'pc-client', labels: { role: 'client' } });
      prober = Prober.open(await containerPid(lab, 'h1', 'pc-client'));
      await applyPolicies(lab, allow);
      await prober.start(web, 80);
      if (!firstMatch(await prober.stop({ want: 'open', settleMs: 0, maxMs: 10_000 }), 'open').first) {
        throw new Error('the client never reached the web server under the allowing policy');
      }
      const latencies: number[] = [];
      const cli: number[] = [];
      let flaps = 0;
      for (let i = 0; i < TRIALS; i++) {
        const want: Want = i % 2 === 0 ? 'dropped' : 'open';
        await prober.start(web, 80);
        const spawned = nowMs();
        const returned = await applyPolicies(lab, want === 'open' ? allow : deny);
        cli.push(returned - spawned);
        const probes = await prober.stop({ want, settleMs: 200, maxMs: 5000 });
        const flip = firstMatch(probes, want);
        if (!flip.first) throw new Error(`trial ${i}: the connection was not ${want} within 5 s of the policy change`);
        latencies.push(flip.first.start - returned);
        flaps += flip.flaps;
      }
      // The agents often apply the change before the CLI has exited: that counts as 0.
      const clamped = latencies.map((ms) => Math.max(0, ms));
      ctx.add(figure('policy-convergence', `CLI return → outcome flipped p50 (${TRIALS} trials)`, percentile(clamped, 50), 'ms', { op: '<=', limit: 100 }));
      ctx.add(figure('policy-convergence', 'CLI return → outcome flipped p99', percentile(clamped, 99), 'ms'));
      ctx.add(figure('policy-convergence', `trials flipped before the CLI returned (of ${TRIALS})`, latencies.filter((ms) => ms <= 0).length, 'count'));
      ctx.add(figure('policy-convergence', 'sluice policy apply wall time p50 (lab.sh + node start + put)', percentile(cli, 50), 'ms'));
      ctx.add(figure('policy-convergence', 'probes with the old outcome after the flip', flaps, 'count', { op: '<=', limit: 0 }));
    } finally {
      await prober?.close();
      await removePolicies(lab, [POLICY]);
      await removeContainers(lab, 'h2', ['pc-web']);
      await removeContainers(lab, 'h1', ['pc-client']);
    }
  },
};
