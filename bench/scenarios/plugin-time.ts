// The plugin's own time per container start: CreateEndpoint + Join as the agent's API trace
// (DEBUG=sluice:api) times them, from the request's arrival to the reply.
import { readFileSync, statSync } from 'node:fs';
import type { Lab } from '../../test/helpers/lab';
import { LAB_SCRIPT } from '../../test/helpers/lab';
import { IMAGE, NET, agentLog, timedDocker } from '../labs';
import { runOk } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const STARTS = 60;
const TRACE = /sluice:api POST \/(?:NetworkDriver|IpamDriver)\.(CreateEndpoint|Join|RequestAddress) -> 200 in ([\d.]+) ms/;

/** Restarts a host's agent with extra environment (lab.sh passes its own on to the agent). */
async function restartAgent(lab: Lab, host: string, env: NodeJS.ProcessEnv): Promise<void> {
  await lab.agentStop(host);
  await runOk('bash', [LAB_SCRIPT, '--lab', lab.name, 'agent-start', host], 60_000, { ...process.env, ...env });
}

export const pluginTime: Scenario = {
  name: 'plugin-time',
  labs: ['one'],
  async run(ctx) {
    const lab = await ctx.lab('one');
    await restartAgent(lab, 'h1', { DEBUG: 'sluice:api' });
    try {
      const start = () => timedDocker(lab, 'h1', 'run', '--rm', '--net', NET, IMAGE, 'true');
      await start(); // the first start after a restart reads the kernel's firewall
      const log = agentLog(lab, 'h1');
      const offset = statSync(log).size;
      for (let i = 0; i < STARTS; i++) await start();
      const times: Record<string, number[]> = { CreateEndpoint: [], Join: [], RequestAddress: [] };
      for (const line of readFileSync(log, 'utf8').slice(offset).split('\n')) {
        const match = TRACE.exec(line);
        if (match) times[match[1]!]!.push(Number(match[2]));
      }
      const { CreateEndpoint: create = [], Join: join = [], RequestAddress: request = [] } = times;
      // Starts run one after another, so the n-th CreateEndpoint and the n-th Join are one container's.
      if (create.length !== STARTS || join.length !== STARTS) {
        throw new Error(`expected ${STARTS} CreateEndpoint and Join lines in ${log}, found ${create.length} and ${join.length}`);
      }
      const perStart = create.map((ms, i) => ms + join[i]!);
      ctx.add(figure('plugin-time', `CreateEndpoint+Join p50 (${STARTS} starts)`, percentile(perStart, 50), 'ms', { op: '<=', limit: 15 }));
      ctx.add(figure('plugin-time', 'CreateEndpoint+Join p99', percentile(perStart, 99), 'ms'));
      ctx.add(figure('plugin-time', 'CreateEndpoint p50', percentile(create, 50), 'ms'));
      ctx.add(figure('plugin-time', 'Join p50', percentile(join, 50), 'ms'));
      // Not part of the figure, but also on the path of every start: the address from IPAM.
      ctx.add(figure('plugin-time', 'RequestAddress p50 (IPAM, before CreateEndpoint)', percentile(request, 50), 'ms'));
    } finally {
      await restartAgent(lab, 'h1', {});
    }
  },
};
