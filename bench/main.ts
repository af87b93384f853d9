// `npm run bench [-- --only NAME[,NAME…] | -- NAME…]`: runs the scenarios on bench- labs, prints a
// markdown table of every figure against its target and writes it to bench/results.md, one
// section per scenario: a run replaces the sections of the scenarios it ran and keeps the rest.
// Labs come up on first use and go down after the last scenario that needs them, and always
// before exit, also on failure or interruption.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabPool } from './labs';
import { stopAll } from './proc';
import { errorRow, markdownTable, type Row } from './report';
import type { Context, Scenario } from './scenario';
import { decodeCost } from './scenarios/decode-cost';
import { dnsThroughput } from './scenarios/dns-throughput';
import { dockerRunCluster, dockerRunSingle } from './scenarios/docker-run';
import { explainScenario } from './scenarios/explain';
import { incrementalFirewall } from './scenarios/incremental-firewall';
import { largeCluster } from './scenarios/large-cluster';
import { memory } from './scenarios/memory';
import { names } from './scenarios/names';
import { perPacket } from './scenarios/per-packet';
import { pluginTime, pluginTimeDual, pluginTimeScraped, pluginTimeTls } from './scenarios/plugin-time';
import { policyConvergence, policyConvergenceTls } from './scenarios/policy-convergence';
import { routeConvergence } from './scenarios/route-convergence';
import { runToPolicy } from './scenarios/run-to-policy';
import { scale } from './scenarios/scale';
import { throughput } from './scenarios/throughput';
import { throughputIpv6 } from './scenarios/throughput-ipv6';
import { throughputWireguard } from './scenarios/throughput-wireguard';

// In run order: scenarios sharing a lab are next to each other, so few labs are up at once.
const SCENARIOS: readonly Scenario[] = [
  decodeCost,
  largeCluster,
  scale,
  dockerRunSingle,
  pluginTime,
  pluginTimeTls,
  pluginTimeScraped,
  pluginTimeDual,
  memory,
  dockerRunCluster,
  throughput,
  throughputIpv6,
  throughputWireguard,
  routeConvergence,
  policyConvergence,
  policyConvergenceTls,
  runToPolicy,
  names,
  perPacket,
  dnsThroughput,
  explainScenario,
  incrementalFirewall,
];

const RESULTS = path.resolve(__dirname, '../../bench/results.md');

/** What results.md starts with when there is none yet; an existing file keeps its own. */
const PREAMBLE = [
  '# Sluice benchmark results',
  '',
  'One section per scenario, each from its latest run (`npm run bench`, or `npm run bench -- --only NAME`).',
  'Ratios pair runs interleaved in the same lab, so load from elsewhere falls on both sides.',
  '',
].join('\n');

/**
 * results.md with the sections of `fresh` (by scenario name) in place of their old ones: what
 * precedes the first "## " heading, and every other scenario's section, stay as they were.
 * Sections come in `order`; one of a scenario no longer in it stays at the end.
 */
export function updateResults(existing: string | undefined, fresh: ReadonlyMap<string, string>, order: readonly string[]): string {
  const [preamble = PREAMBLE, ...parts] = (existing ?? PREAMBLE).split(/^(?=## )/m);
  const sections = new Map(parts.map((part) => [/^## (\S+)/.exec(part)?.[1] ?? part, part.trimEnd()]));
  for (const [name, body] of fresh) sections.set(name, `## ${name}\n\n${body.trimEnd()}`);
  const rank = (name: string) => (order.includes(name) ? order.indexOf(name) : order.length);
  const names = [...sections.keys()].sort((a, b) => rank(a) - rank(b));
  return `${preamble.trimEnd()}\n\n${names.map((name) => sections.get(name)!).join('\n\n')}\n`;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** The scenario names asked for: after --only (comma-separated), or as plain arguments; undefined for all. */
export function requestedNames(argv: readonly string[]): string[] | undefined {
  const at = argv.indexOf('--only');
  const names = at >= 0 ? (argv[at + 1] ?? '').split(',') : argv.filter((arg) => !arg.startsWith('-'));
  if (at < 0 && names.length === 0) return undefined;
  return names.filter((n) => n !== '');
}

function selected(argv: string[]): readonly Scenario[] {
  const names = requestedNames(argv);
  if (names === undefined) return SCENARIOS;
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (names.length === 0 || unknown.length > 0) {
    log(`--only (or a plain argument) wants scenario names from: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  return SCENARIOS.filter((s) => names.includes(s.name));
}

async function main(): Promise<void> {
  const scenarios = selected(process.argv.slice(2));
  const pool = new LabPool();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  const rows: Row[] = [];
  /** Each scenario's rows and the minutes it took, by scenario name. */
  const runs = new Map<string, { rows: Row[]; minutes: number }>();

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
      const own: Row[] = [];
      const ctx: Context = {
        lab: (key) => pool.get(key),
        add: (row) => {
          rows.push(row);
          own.push(row);
          log(`${row.figure}: ${row.measured} (${row.verdict})`);
        },
        tmp,
        log: (message) => log(`${scenario.name}: ${message}`),
      };
      try {
        await scenario.run(ctx);
      } catch (err) {
        const row = errorRow(scenario.name, err);
        rows.push(row);
        own.push(row);
        log(`${scenario.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        // Its labs may be left in any state: the next scenario gets fresh ones.
        for (const key of scenario.labs) await pool.release(key);
      } finally {
        await stopAll();
      }
      const later = new Set(scenarios.slice(i + 1).flatMap((s) => s.labs));
      for (const key of scenario.labs) if (!later.has(key)) await pool.release(key);
      runs.set(scenario.name, { rows: own, minutes: (Date.now() - t0) / 60_000 });
      log(`${scenario.name} took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cleanUp();
  }
  // An interrupted run keeps the last complete results.
  if (interrupted) return;

  const machine = `${os.hostname()}: ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`;
  const command = `npm run bench${scenarios.length === SCENARIOS.length ? '' : ` -- --only ${scenarios.map((s) => s.name).join(',')}`}`;
  const fresh = new Map(
    [...runs].map(([name, run]) => [name, `${new Date().toISOString()} on ${machine}; \`${command}\`, ${run.minutes.toFixed(1)} min.\n\n${markdownTable(run.rows)}`]),
  );
  const existing = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : undefined;
  writeFileSync(RESULTS, updateResults(existing, fresh, SCENARIOS.map((s) => s.name)));
  process.stdout.write(`\n${markdownTable(rows)}\n`);
  log(`written to ${RESULTS}`);
}

// Imported (by its test), it only lends updateResults.
if (require.main === module) {
  main().catch((err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
}
