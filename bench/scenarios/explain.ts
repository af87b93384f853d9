// `sluice policy explain` and `policy apply --dry-run` at scale: 5,000 endpoints in 200 apps and
// 200 policies (one per app, the per-packet scenario's shape), over the in-memory store, so the
// figure is the CLI's own work (read, compile, evaluate) without etcd round trips.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { policyApply, policyExplain } from '../../src/cli/commands';
import { defineNetwork, newNetworkRecord } from '../../src/ipam/ipam-service';
import { parseCidr } from '../../src/net/ip';
import { parsePolicies } from '../../src/policy-document/policy';
import { MemoryStore } from '../../src/store/memory-store';
import { Registry } from '../../src/store/registry';
import { writePolicies, type PolicyDoc } from '../policies';
import { nowMs } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { median } from '../stats';

const ENDPOINTS = 5000;
const APPS = 200;
const RUNS = 5;

function policy(i: number, ports: (number | string)[]): PolicyDoc {
  return {
    name: `app${i}`,
    selector: `app == 'app${i}'`,
    ingress: [{ action: 'allow', protocol: 'tcp', from: `app in {'app${(i + APPS - 1) % APPS}', 'app${i}'}`, ports }],
    egress: [{ action: 'allow', protocol: 'tcp', to: 'has(app)', ports: [5201, 80, 443] }],
  };
}

async function cluster(): Promise<Registry> {
  const registry = new Registry(new MemoryStore());
  await defineNetwork(registry, () => newNetworkRecord(parseCidr('10.96.0.0/16')!, 26, { name: 'appnet' }));
  for (let i = 0; i < ENDPOINTS; i++) {
    const hex = i.toString(16);
    await registry.putEndpoint({
      id: hex.padStart(64, '0'),
      network: '10.96.0.0-16',
      node: `h${i % 2}`,
      address: `10.96.${Math.floor(i / 250)}.${(i % 250) + 2}`,
      hostIfname: `slv${hex.padStart(11, '0')}`,
      containerName: `c${i}`,
      labels: { app: `app${i % APPS}` },
      ports: [],
    });
  }
  const docs = Array.from({ length: APPS }, (_, i) => policy(i, [5201, '8000-8100']));
  for (const p of parsePolicies(docs.map((d) => JSON.stringify({ kind: 'NetworkPolicy', ...d })).join('\n---\n'))) await registry.putPolicy(p);
  return registry;
}

async function timed(action: () => Promise<string>): Promise<{ ms: number; output: string }> {
  const started = nowMs();
  const output = await action();
  return { ms: nowMs() - started, output };
}

export const explainScenario: Scenario = {
  name: 'explain',
  labs: [],
  async run(ctx) {
    const registry = await cluster();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-explain-'));
    try {
      // Changing one app's ingress ports flips its 50 senders × 25 receivers on some ports.
      const file = writePolicies(dir, 'change.yaml', [policy(7, [5201, 80])]);
      const explains: number[] = [];
      const dryRuns: number[] = [];
      let changes = 0;
      for (let run = 0; run < RUNS; run++) {
        explains.push((await timed(() => policyExplain(registry, 'c6', 'c7', { protocol: 'tcp', port: 5201 }))).ms);
        const dry = await timed(() => policyApply(registry, file, { dryRun: true, output: 'json' }));
        dryRuns.push(dry.ms);
        changes = (JSON.parse(dry.output) as { changes: unknown[] }).changes.length;
      }
      ctx.add(figure('explain', `policy explain, ${ENDPOINTS} endpoints, ${APPS} policies: median`, median(explains), 'ms', { op: '<=', limit: 200 }));
      ctx.add(figure('explain', `policy apply --dry-run of one policy: median`, median(dryRuns), 'ms', { op: '<=', limit: 2000 }));
      ctx.add(figure('explain', 'pair/protocol entries the dry run listed', changes, 'count'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
