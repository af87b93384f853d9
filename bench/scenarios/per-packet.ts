// Per-packet cost of policy: TCP throughput between two containers on h1 with 5,000 other
// endpoints (a fake remote node's, in etcd) and 200 policies in force, against none, interleaved.
// The measured pair is selected by policies that allow the iperf3 port, so its packets go
// through the policy chains.
import type { Lab } from '../../test/helpers/lab';
import { NET_KEY, containerCommand, containerPid, etcdTool, removeContainers, startContainer, waitAgentsIdle } from '../labs';
import { applyPolicies, writePolicies, type PolicyDoc } from '../policies';
import { sleep, type Background } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { median, ratios } from '../stats';
import { iperf3, iperf3Server } from './throughput';

const ENDPOINTS = 5000;
const POLICIES = 200;
const PORT = 5201;
const FAKE_NODE = 'bench-remote';
const FAKE_NODE_IP = '10.250.0.201';
const PREFIX = 'bench-pp-';

/** Policy i selects app=app<i>, lets app<i-1> and app<i> in on the iperf3 port and a range, and lets it out to any app. */
function policyDocs(): PolicyDoc[] {
  return Array.from({ length: POLICIES }, (_, i) => ({
    name: `${PREFIX}${String(i).padStart(3, '0')}`,
    selector: `app == 'app${i}'`,
    ingress: [{ action: 'allow', protocol: 'tcp', from: `app in {'app${(i + POLICIES - 1) % POLICIES}', 'app${i}'}`, ports: [PORT, '8000-8100'] }],
    egress: [{ action: 'allow', protocol: 'tcp', to: 'has(app)', ports: [PORT, 80, 443] }],
  }));
}

async function policyChains(lab: Lab): Promise<number> {
  const saved = await lab.execOk('h1', ['iptables-save', '-t', 'filter']);
  return saved.split('\n').filter((line) => /^:SLUICE-p[io]-/.test(line)).length;
}

async function waitChains(lab: Lab, count: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await policyChains(lab)) !== count) {
    if (Date.now() > deadline) throw new Error(`h1 did not reach ${count} policy chains within 120 s`);
    await sleep(500);
  }
  await waitAgentsIdle(lab);
}

export const perPacket: Scenario = {
  name: 'per-packet',
  labs: ['flat2'],
  async run(ctx) {
    const lab = await ctx.lab('flat2');
    const file = writePolicies(ctx.tmp, 'per-packet.yaml', policyDocs());
    let server: Background | undefined;
    let loaded = false;
    const load = async () => {
      ctx.log(`loading ${ENDPOINTS} endpoints and ${POLICIES} policies`);
      loaded = true;
      await etcdTool(lab, ['fake-endpoints', FAKE_NODE, FAKE_NODE_IP, NET_KEY, '10.96.100.0', String(ENDPOINTS), String(POLICIES)]);
      await applyPolicies(lab, file);
      await waitChains(lab, 2 * POLICIES);
    };
    const unload = async () => {
      ctx.log('unloading');
      await etcdTool(lab, ['remove-policies', PREFIX]);
      await etcdTool(lab, ['remove-node', FAKE_NODE]);
      loaded = false;
      await waitChains(lab, 0);
    };
    try {
      const serverIp = await startContainer(lab, 'h1', { name: 'pp-server', labels: { app: `app${POLICIES - 1}` } });
      await startContainer(lab, 'h1', { name: 'pp-client', labels: { app: `app${POLICIES - 2}` } });
      server = iperf3Server('iperf3 in pp-server', containerCommand(await containerPid(lab, 'h1', 'pp-server'), []), PORT);
      const client = containerCommand(await containerPid(lab, 'h1', 'pp-client'), []);
      const measure = () => iperf3(client, serverIp, PORT);

      // Pairs (none, loaded), (loaded, none), (none, loaded): two loads instead of three.
      const none: number[] = [];
      const withLoad: number[] = [];
      none.push(await measure());
      const loadStarted = Date.now();
      await load();
      const loadMs = Date.now() - loadStarted;
      const governed = await lab.exec('h1', ['ipset', 'test', 'sluice-ingress-governed', serverIp]);
      if (governed.code !== 0) throw new Error(`pp-server (${serverIp}) is not selected by any ingress policy on h1`);
      const entries = (await lab.execOk('h1', ['ipset', 'list', '-t'])).match(/^Number of entries: (\d+)$/gm) ?? [];
      const members = entries.reduce((sum, line) => sum + Number(line.split(': ')[1]), 0);
      withLoad.push(await measure());
      withLoad.push(await measure());
      await unload();
      none.push(await measure());
      none.push(await measure());
      await load();
      withLoad.push(await measure());
      await unload();

      ctx.add(figure('per-packet', 'no other endpoints, no policies: median', median(none), 'Gbit/s'));
      ctx.add(figure('per-packet', `${ENDPOINTS} endpoints, ${POLICIES} policies: median`, median(withLoad), 'Gbit/s'));
      ctx.add(figure('per-packet', 'ipset entries on h1 under load', members, 'count'));
      ctx.add(figure('per-packet', 'writing them until both agents are quiet again (first load)', loadMs, 'ms'));
      ctx.add(figure('per-packet', 'median of paired ratios loaded/none', median(ratios(withLoad, none)), 'ratio', { op: '>=', limit: 0.95 }));
    } finally {
      await server?.stop();
      if (loaded) await unload().catch((err: unknown) => ctx.log(`unload failed: ${String(err)}`));
      await removeContainers(lab, 'h1', ['pp-server', 'pp-client']);
    }
  },
};
