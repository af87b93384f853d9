// Names across hosts, as a container sees them through Docker's embedded DNS (127.0.0.11), on h2:
//   lookup    round trips for a container's name on h1 (dockerd forwards it to the agent's
//             resolver) against one on h2 (dockerd answers itself), in alternating batches; and the
//             same name asked of the resolver directly, which splits the difference into the
//             agent's answer and dockerd's forwarding
//   run       from `docker run -d` on h1 returning to the new name answered on h2, asked every
//             5 ms from before the run starts (negative: answered before the CLI returned)
import * as path from 'node:path';
import type { Lab } from '../../test/helpers/lab';
import { LAB_DNS_ADDRESS } from '../../test/helpers/lab';
import { IMAGE, NET, containerCommand, containerPid, dockerOk, removeContainers, startContainer } from '../labs';
import { nowMs, run, runOk, sleep } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const EMBEDDED_DNS = '127.0.0.11';
const ASKER = path.join(__dirname, '../dns-asker.js');
const BATCHES = 10;
const PER_BATCH = 50;
const RUNS = 20;
/** Time for the asker (a node process) to start asking before `docker run` starts. */
const ASKER_START_MS = 300;

function askerCommand(pid: string, name: string, mode: 'time' | 'until', n: number, server = EMBEDDED_DNS): [string, string[]] {
  return containerCommand(pid, [process.execPath, ASKER, server, name, mode, String(n)]);
}

async function roundTrips(pid: string, name: string, server?: string): Promise<number[]> {
  const [cmd, args] = askerCommand(pid, name, 'time', PER_BATCH, server);
  return JSON.parse((await runOk(cmd, args, 60_000)).stdout) as number[];
}

async function runToName(lab: Lab, askerPid: string, name: string): Promise<number> {
  const [cmd, args] = askerCommand(askerPid, name, 'until', 10_000);
  const answered = run(cmd, args, 20_000);
  await sleep(ASKER_START_MS);
  const startedAt = nowMs();
  await dockerOk(lab, 'h1', 'run', '-d', '--init', '--name', name, '--net', NET, IMAGE, 'sleep', '3600');
  const ranAt = nowMs();
  const r = await answered;
  if (r.code !== 0) throw new Error(`${name} never resolved on h2: ${r.stderr.trim()}`);
  const answeredAt = Number(r.stdout.trim());
  // An answer before the container existed would be some other resolver's, not a measurement.
  if (answeredAt < startedAt) throw new Error(`${name} was answered on h2 before docker run started`);
  return answeredAt - ranAt;
}

export const names: Scenario = {
  name: 'names',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const containers = { h1: ['names-far'], h2: ['names-asker', 'names-near'] };
    try {
      await startContainer(lab, 'h1', { name: 'names-far' });
      await startContainer(lab, 'h2', { name: 'names-asker' });
      await startContainer(lab, 'h2', { name: 'names-near' });
      const pid = await containerPid(lab, 'h2', 'names-asker');
      // Known on h2 before timing: the first batch would otherwise wait for it.
      const [cmd, args] = askerCommand(pid, 'names-far', 'until', 10_000);
      await runOk(cmd, args, 20_000);

      const far: number[] = [];
      const near: number[] = [];
      const direct: number[] = [];
      for (let b = 0; b < BATCHES; b++) {
        far.push(...(await roundTrips(pid, 'names-far')));
        near.push(...(await roundTrips(pid, 'names-near')));
        direct.push(...(await roundTrips(pid, 'names-far', LAB_DNS_ADDRESS)));
      }
      const n = BATCHES * PER_BATCH;
      for (const p of [50, 99]) {
        ctx.add(figure('names', `lookup p${p}, name on the other host (${n} questions)`, percentile(far, p), 'ms'));
        ctx.add(figure('names', `lookup p${p}, name on the same host (${n} questions)`, percentile(near, p), 'ms'));
        ctx.add(figure('names', `lookup p${p} ratio other host / same host`, percentile(far, p) / percentile(near, p), 'ratio', { op: '<=', limit: 1.5 }));
      }
      ctx.add(figure('names', `lookup p50, name on the other host asked of the resolver directly, not through dockerd (${n} questions)`, percentile(direct, 50), 'ms'));

      const latencies: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const name = `names-run-${i}`;
        containers.h1.push(name);
        latencies.push(await runToName(lab, pid, name));
      }
      ctx.add(figure('names', `docker run on h1 -> name answered on h2, p50 (${RUNS} runs)`, percentile(latencies, 50), 'ms', { op: '<=', limit: 100 }));
      ctx.add(figure('names', `docker run on h1 -> name answered on h2, p99 (${RUNS} runs)`, percentile(latencies, 99), 'ms', { op: '<=', limit: 300 }));
    } finally {
      for (const [host, list] of Object.entries(containers)) await removeContainers(lab, host, list);
    }
  },
};
