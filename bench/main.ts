// `npm run bench [-- --only NAME[,NAME…]]`: runs the scenarios on bench- labs, prints a
// markdown table of every figure against its target and writes it to bench/results.md.
// Labs come up on first use and go down after the last scenario that needs them, and always
// before exit, also on failure or interruption.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabPool } from './labs';
import { stopAll } from './proc';
import { errorRow, markdownTable, type Row } from './report';
import type { Context, Scenario } from './scenario';
import { dockerRunCluster, dockerRunSingle } from './scenarios/docker-run';
import { memory } from './scenarios/memory';
import { perPacket } from './scenarios/per-packet';
import { pluginTime, pluginTimeTls } from './scenarios/plugin-time';
import { policyConvergence, policyConvergenceTls } from './scenarios/policy-convergence';
import { routeConvergence } from './scenarios/route-convergence';
import { runToPolicy } from './scenarios/run-to-policy';
import { throughput } from './scenarios/throughput';

// In run order: scenarios sharing a lab are next to each other, so few labs are up at once.
const SCENARIOS: readonly Scenario[] = [
  dockerRunSingle,
  pluginTime,
  pluginTimeTls,
  memory,
  dockerRunCluster,
  throughput,
  routeConvergence,
  policyConvergence,
  policyConvergenceTls,
  runToPolicy,
  perPacket,
];

const RESULTS = path.resolve(__dirname, '../../bench/results.md');

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function selected(argv: string[]): readonly Scenario[] {
  const at = argv.indexOf('--only');
  if (at < 0) return SCENARIOS;
  const names = (argv[at + 1] ?? '').split(',').filter((n) => n !== '');
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (names.length === 0 || unknown.length > 0) {
    log(`--only wants scenario names from: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  return SCENARIOS.filter((s) => names.includes(s.name));
}

async function main(): Promise<void> {
  const scenarios = selected(process.argv.slice(2));
  const pool = new LabPool();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  const rows: Row[] = [];
  const started = Date.now();

  let interrupted = false;
  const cleanUp = async () => {
    await stopAll();
    await pool.releaseAll();
    rmSync(tmp, { recursive: true, force: true });
  };
  const abort = (why: string, code: number) => {
    interrupted = true;
    log(`${why}: tearing the labs down`);
    void cleanUp().finally(() => process.exit(code));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(signal, 130));
  // A throw in an event handler (a helper's output, say) would otherwise exit with the labs up.
  process.once('uncaughtException', (err) => abort(`uncaught ${err.stack ?? err.message}`, 1));

  try {
    for (const [i, scenario] of scenarios.entries()) {
      log(`== ${scenario.name}`);
      const t0 = Date.now();
      const ctx: Context = {
        lab: (key) => pool.get(key),
        add: (row) => {
          rows.push(row);
          log(`${row.figure}: ${row.measured} (${row.verdict})`);
        },
        tmp,
        log: (message) => log(`${scenario.name}: ${message}`),
      };
      try {
        await scenario.run(ctx);
      } catch (err) {
        rows.push(errorRow(scenario.name, err));
        log(`${scenario.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        // Its labs may be left in any state: the next scenario gets fresh ones.
        for (const key of scenario.labs) await pool.release(key);
      } finally {
        await stopAll();
      }
      const later = new Set(scenarios.slice(i + 1).flatMap((s) => s.labs));
      for (const key of scenario.labs) if (!later.has(key)) await pool.release(key);
      log(`${scenario.name} took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cleanUp();
  }
  // An interrupted run keeps the last complete results.
  if (interrupted) return;

  const table = markdownTable(rows);
  const header = [
    '# Sluice benchmark results',
    '',
    `${new Date().toISOString()} on ${os.hostname()}: ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}; ` +
      `${scenarios.length} scenario(s) in ${((Date.now() - started) / 60_000).toFixed(1)} min. ` +
      'Ratios pair runs interleaved in the same lab, so load from elsewhere falls on both sides.',
    '',
  ].join('\n');
  writeFileSync(RESULTS, `${header}\n${table}\n`);
  process.stdout.write(`\n${table}\n`);
  log(`written to ${RESULTS}`);
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
