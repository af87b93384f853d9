// `docker run --rm` on the sluice network against the same on a Docker bridge network of the
// same dockerd, interleaved: what sluice adds to a container start.
import type { LabKey } from '../labs';
import { IMAGE, NET, docker, dockerOk, timedDocker } from '../labs';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { median, ratios } from '../stats';

const RUNS = 30;
const WARMUP = 3;

function dockerRun(name: string, lab: LabKey): Scenario {
  return {
    name,
    labs: [lab],
    async run(ctx) {
      const l = await ctx.lab(lab);
      await dockerOk(l, 'h1', 'network', 'create', '-d', 'bridge', '--subnet', '10.200.0.0/16', 'br');
      try {
        const start = (net: string) => timedDocker(l, 'h1', 'run', '--rm', '--net', net, IMAGE, 'true');
        for (let i = 0; i < WARMUP; i++) {
          await start(NET);
          await start('br');
        }
        const sluice: number[] = [];
        const bridge: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          // Each pair in turn starts with the other, so drifting load falls on both alike.
          if (i % 2 === 0) {
            sluice.push(await start(NET));
            bridge.push(await start('br'));
          } else {
            bridge.push(await start('br'));
            sluice.push(await start(NET));
          }
        }
        ctx.add(figure(name, `sluice median (${RUNS} runs)`, median(sluice), 'ms'));
        ctx.add(figure(name, `bridge median (${RUNS} runs)`, median(bridge), 'ms'));
        ctx.add(figure(name, 'median of paired ratios sluice/bridge', median(ratios(sluice, bridge)), 'ratio', { op: '<=', limit: 1.05 }));
      } finally {
        await docker(l, 'h1', 'network', 'rm', 'br');
      }
    },
  };
}

export const dockerRunSingle = dockerRun('docker-run', 'one');
export const dockerRunCluster = dockerRun('docker-run-cluster', 'flat3');
