// The agent's resident memory (VmRSS) idle, with 200 running containers on its host, and (a fresh
// agent, its resolver on) knowing 5,000 endpoints of another host, names and all.
import type { Lab } from '../../test/helpers/lab';
import { NET_KEY, agentPid, docker, etcdTool, procStatusKb, removeContainers, startContainer, waitAgentsIdle } from '../labs';
import { sleep } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';

const CONTAINERS = 200;
const PARALLEL = 4;
const KNOWN_ENDPOINTS = 5000;
const FAKE_NODE = 'bench-mem-remote';
const FAKE_NODE_IP = '10.250.0.202';

/** The highest of a few VmRSS samples, in MB: the garbage collector makes it wander. */
async function rssMb(lab: Lab): Promise<number> {
  let kb = 0;
  for (let i = 0; i < 5; i++) {
    kb = Math.max(kb, procStatusKb(agentPid(lab, 'h1'), 'VmRSS'));
    await sleep(500);
  }
  return kb / 1024;
}

export const memory: Scenario = {
  name: 'memory',
  labs: ['one'],
  async run(ctx) {
    const lab = await ctx.lab('one');
    // A fresh agent: "idle" is after its start, not after earlier scenarios' work.
    await lab.agentStop('h1');
    await lab.agentStart('h1');
    await sleep(2000);
    await waitAgentsIdle(lab);
    ctx.add(figure('memory', 'agent VmRSS idle', await rssMb(lab), 'MB', { op: '<=', limit: 100 }));

    const names = Array.from({ length: CONTAINERS }, (_, i) => `mem${i}`);
    try {
      const queue = [...names];
      await Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          for (let name = queue.shift(); name !== undefined; name = queue.shift()) await startContainer(lab, 'h1', { name });
        }),
      );
      await waitAgentsIdle(lab);
      const running = (await docker(lab, 'h1', 'ps', '-q')).stdout.split('\n').filter((id) => id.trim() !== '').length;
      if (running < CONTAINERS) throw new Error(`only ${running} of ${CONTAINERS} containers are running`);
      ctx.add(figure('memory', `agent VmRSS with ${CONTAINERS} endpoints`, await rssMb(lab), 'MB', { op: '<=', limit: 100 }));
      ctx.add(figure('memory', 'agent VmHWM (peak RSS since its start)', procStatusKb(agentPid(lab, 'h1'), 'VmHWM') / 1024, 'MB'));
      ctx.log(`removing ${CONTAINERS} containers`);
      await removeContainers(lab, 'h1', names);
      await waitAgentsIdle(lab);
      ctx.add(figure('memory', 'agent VmRSS after removing them again', await rssMb(lab), 'MB'));
    } finally {
      await removeContainers(lab, 'h1', names);
    }

    // The lab's agents serve names (--dns-address): every one of these endpoints is in its view and its resolver.
    await lab.agentStop('h1');
    await lab.agentStart('h1');
    try {
      ctx.log(`writing ${KNOWN_ENDPOINTS} endpoints of another host`);
      await etcdTool(lab, ['fake-endpoints', FAKE_NODE, FAKE_NODE_IP, NET_KEY, '10.96.160.0', String(KNOWN_ENDPOINTS), '50']);
      await waitAgentsIdle(lab);
      ctx.add(figure('memory', `agent VmRSS, resolver on, ${KNOWN_ENDPOINTS} endpoints known`, await rssMb(lab), 'MB', { op: '<=', limit: 100 }));
    } finally {
      await etcdTool(lab, ['remove-node', FAKE_NODE]);
    }
  },
};
