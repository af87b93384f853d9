// From `sluice policy apply` returning to the connection outcome flipping, as seen by a client
// on h1 probing a web server on h2 every 5 ms: the policy alternates between allowing
// role=client → role=web on TCP 80 and denying all ingress to role=web. The CLI often returns
// after the agents have applied the change, so the time from the policy's write reaching a
// watcher of the store (as the agents' watches do) is shown too. policy-convergence-tls: the
// same on a cluster whose etcd wants TLS and client certificates, against a plain one.
import type { Lab } from '../../test/helpers/lab';
import { HTTPD, containerPid, etcdToolCommand, removeContainers, startContainer } from '../labs';
import type { Want } from '../outcome';
import { applyPolicies, removePolicies, writePolicies } from '../policies';
import { Prober, firstMatch } from '../probe';
import { Background, nowMs, sleep } from '../proc';
import { figure } from '../report';
import type { Context, Scenario } from '../scenario';
import { percentile } from '../stats';

const TRIALS = 30;
const POLICY = 'bench-web';

interface Convergence {
  /** CLI return → outcome flipped, per trial (≤ 0: flipped before the CLI returned). */
  latencies: number[];
  /** Policy write seen by a store watch → outcome flipped. */
  fromStore: number[];
  /** Wall time of `sluice policy apply`. */
  cli: number[];
  flaps: number;
}

/** TRIALS policy flips on a 2-host lab, timed from the CLI's return and from the store's watch. */
async function converge(ctx: Context, lab: Lab): Promise<Convergence> {
  const allow = writePolicies(ctx.tmp, 'web-allow.yaml', [
    { name: POLICY, selector: "role == 'web'", ingress: [{ action: 'allow', protocol: 'tcp', from: "role == 'client'", ports: [80] }] },
  ]);
  const deny = writePolicies(ctx.tmp, 'web-deny.yaml', [{ name: POLICY, selector: "role == 'web'", ingress: [] }]);
  let prober: Prober | undefined;
  const written: number[] = [];
  const [cmd, args] = await etcdToolCommand(lab, ['watch-policies']);
  const watcher = new Background('policy watch', cmd, args, (line) => {
    const event = JSON.parse(line) as { name: string; at: number };
    if (event.name === POLICY) written.push(event.at);
  });
  try {
    const web = await startContainer(lab, 'h2', { name: 'pc-web', labels: { role: 'web' }, cmd: HTTPD });
    await startContainer(lab, 'h1', { name: 'pc-client', labels: { role: 'client' } });
    prober = Prober.open(await containerPid(lab, 'h1', 'pc-client'));
    // Again until the watch (which starts from "now" once connected) has seen a write.
    for (let attempt = 0; written.length === 0; attempt++) {
      if (attempt === 5) throw new Error(`the store watch does not see policy ${POLICY} being written: ${watcher.stderr}`);
      await applyPolicies(lab, allow);
      await sleep(500);
    }
    await prober.start(web, 80);
    if (!firstMatch(await prober.stop({ want: 'open', settleMs: 0, maxMs: 10_000 }), 'open').first) {
      throw new Error('the client never reached the web server under the allowing policy');
    }
    const latencies: number[] = [];
    const fromStore: number[] = [];
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
      const write = written.find((at) => at >= spawned);
      if (write === undefined) throw new Error(`trial ${i}: the store watch did not see the write`);
      fromStore.push(flip.first.start - write);
      flaps += flip.flaps;
    }
    return { latencies, fromStore, cli, flaps };
  } finally {
    await watcher.stop();
    await prober?.close();
    await removePolicies(lab, [POLICY]);
    await removeContainers(lab, 'h2', ['pc-web']);
    await removeContainers(lab, 'h1', ['pc-client']);
  }
}

export const policyConvergence: Scenario = {
  name: 'policy-convergence',
  labs: ['flat2'],
  async run(ctx) {
    const { latencies, fromStore, cli, flaps } = await converge(ctx, await ctx.lab('flat2'));
    // The agents often apply the change before the CLI has exited: that counts as 0.
    const clamped = latencies.map((ms) => Math.max(0, ms));
    ctx.add(figure('policy-convergence', `CLI return → outcome flipped p50 (${TRIALS} trials)`, percentile(clamped, 50), 'ms', { op: '<=', limit: 100 }));
    ctx.add(figure('policy-convergence', 'CLI return → outcome flipped p99', percentile(clamped, 99), 'ms'));
    ctx.add(figure('policy-convergence', `trials flipped before the CLI returned (of ${TRIALS})`, latencies.filter((ms) => ms <= 0).length, 'count'));
    ctx.add(figure('policy-convergence', 'policy write seen by a store watch → outcome flipped p50', percentile(fromStore, 50), 'ms'));
    ctx.add(figure('policy-convergence', 'policy write seen by a store watch → outcome flipped p99', percentile(fromStore, 99), 'ms'));
    ctx.add(figure('policy-convergence', 'sluice policy apply wall time p50 (lab.sh + node start + put)', percentile(cli, 50), 'ms'));
    ctx.add(figure('policy-convergence', 'probes with the old outcome after the flip', flaps, 'count', { op: '<=', limit: 0 }));
  },
};

export const policyConvergenceTls: Scenario = {
  name: 'policy-convergence-tls',
  labs: ['flat2', 'flat2Tls'],
  async run(ctx) {
    // From the store's watch: the CLI's return is often after the flip, which hides the agents' time.
    const plain = percentile((await converge(ctx, await ctx.lab('flat2'))).fromStore, 50);
    const tls = percentile((await converge(ctx, await ctx.lab('flat2Tls'))).fromStore, 50);
    ctx.add(figure('policy-convergence-tls', `policy write seen by a store watch → outcome flipped p50, plain etcd (${TRIALS} trials)`, plain, 'ms'));
    ctx.add(figure('policy-convergence-tls', 'the same, etcd with TLS and client certificates', tls, 'ms'));
    ctx.add(figure('policy-convergence-tls', 'p50 ratio TLS/plain', tls / plain, 'ratio', { op: '<=', limit: 1.1 }));
  },
};
