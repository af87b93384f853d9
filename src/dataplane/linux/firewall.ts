/**
 * Sluice's iptables chains and ipsets, Felix style: the last applied state is
 * kept in memory and each apply writes only the difference, in three batched
 * steps — `ipset restore` (creates, additions), one `iptables-restore
 * --noflush` per changed table (whole chains), `ipset restore` (removals,
 * destroys) — so no rule ever refers to a set that does not exist.
 *
 * The kernel is read only when the cache is empty: at the first apply, after a
 * failed one, or after check() found out-of-band damage. Then every chain is
 * rewritten, since rule text read back cannot be compared with what was
 * written.
 *
 * One instance per family: IPv4's through iptables and its `sluice-` sets,
 * IPv6's through ip6tables and its `sluice6` sets; each keeps its own cache.
 */
import { DataplaneError } from '../../errors';
import {
  TABLES,
  applySetChanges,
  normalizeChange,
  normalizeFirewall,
  type FirewallChange,
  type FirewallState,
  type NormalFirewall,
  type SetContent,
  type Table,
} from '../../firewall/state';
import { KeyedMutex } from '../../util/keyed-mutex';
import { CHAIN_PREFIX } from '../../firewall/names';
import type { Family } from '../../net/ip';
import type { RuleCounter } from '../dataplane';
import { batchInput, type CommandRunner } from './command-runner';
import type { IpsetRestorer } from './ipset-restorer';
import {
  compareWithKernel,
  currentFromKernel,
  declareChain,
  hookLines,
  hookRepair,
  hooksOf,
  NO_HOOK_REPAIR,
  parseIpsetSave,
  parseIptablesSave,
  parseRuleCounters,
  planChange,
  planFirewall,
  renderChains,
  type AppliedChain,
  type AppliedFirewall,
  type CurrentFirewall,
  type FirewallPlan,
  type SavedTable,
} from './firewall-plan';

interface KernelFirewall {
  tables: Record<Table, SavedTable>;
  sets: Map<string, SetContent>;
}

export class IptablesFirewall {
  private applied: AppliedFirewall | undefined;
  private readonly mutex = new KeyedMutex();

  /** `iptables` or `ip6tables`: the prefix of this family's -save and -restore. */
  private readonly tool: string;

  constructor(
    private readonly runner: CommandRunner,
    private readonly family: Family,
    /** Shared with the other family's firewall, so a change of both is one process. */
    private readonly ipset: IpsetRestorer,
  ) {
    this.tool = family === 4 ? 'iptables' : 'ip6tables';
  }

  /**
   * Creates the top-level chains if absent and inserts the hooks from the
   * built-in chains that are missing. Never flushes an existing chain: after
   * a restart it still serves running containers.
   */
  ensureHooks(): Promise<void> {
    return this.mutex.run('firewall', async () => {
      const tables = await this.readTables();
      const repair = hookRepair(tables, this.family);
      for (const table of TABLES) {
        const hooks = hooksOf(repair, table);
        if (hooks.insert.length === 0) continue;
        const declare = [...new Set(hooks.insert.map((h) => h.target))].filter((chain) => chain.startsWith(CHAIN_PREFIX) && !tables[table].chains.has(chain));
        await this.iptablesRestore(batchInput([`*${table}`, ...declare.map(declareChain), ...hookLines(hooks), 'COMMIT']));
      }
      // A top-level chain may have been re-created empty; the cache would not know.
      if (repair.insert.length > 0) this.applied = undefined;
    });
  }

  apply(state: FirewallState): Promise<void> {
    return this.mutex.run('firewall', async () => {
      const desired = normalizeFirewall(state, this.family);
      const previous = this.applied;
      const current: CurrentFirewall = previous
        ? { sets: previous.sets, chains: rulesOf(previous), hooks: NO_HOOK_REPAIR }
        : await this.readKernel().then((kernel) => currentFromKernel(kernel.tables, kernel.sets, this.family));
      const plan = planFirewall(current, desired, this.family);
      // Whatever happens below, the kernel may now be neither state: re-read it next time.
      this.applied = undefined;
      await this.execute(plan);
      this.applied = nextApplied(previous, desired, plan, this.family);
    });
  }

  /**
   * Applies a change to the last applied state without reading the kernel:
   * set members in one `ipset restore`, rewritten chains in one
   * `iptables-restore --noflush` per table. Refused when that state is not
   * known; a failure forgets it, so the caller's next full apply re-reads.
   */
  applyChange(change: FirewallChange): Promise<void> {
    return this.mutex.run('firewall', async () => {
      const applied = this.applied;
      if (applied === undefined) throw new DataplaneError('no firewall state applied to change; apply the full state');
      const normal = normalizeChange(applied, change, this.family);
      const plan = planChange(normal, this.family);
      this.applied = undefined;
      await this.execute(plan);
      applySetChanges(applied.sets, normal);
      for (const table of TABLES) {
        for (const name of normal.removedChains[table]) applied.chains[table].delete(name);
        for (const [name, text] of renderChains(normal.chains[table], this.family)) applied.chains[table].set(name, { rules: normal.chains[table].get(name)!, text });
      }
      this.applied = applied;
    });
  }

  /**
   * Compares the kernel with the last applied state: a few ms, for a periodic
   * check. Any difference empties the cache, so the next apply re-reads the
   * kernel and rewrites Sluice's chains and sets.
   */
  check(): Promise<string[]> {
    return this.mutex.run('firewall', async () => {
      const applied = this.applied;
      if (applied === undefined) return [];
      const kernel = await this.readKernel();
      const problems = compareWithKernel(applied, kernel.tables, kernel.sets, this.family);
      if (problems.length > 0) this.applied = undefined;
      return problems;
    });
  }

  /** One `iptables-save -c` of the filter table; no lock: a read sees each chain whole, before or after a restore. */
  async counters(): Promise<RuleCounter[]> {
    return parseRuleCounters(await this.runner.run(`${this.tool}-save`, ['-c', '-t', 'filter']));
  }

  private async execute(plan: FirewallPlan): Promise<void> {
    if (plan.ipsetBefore.length > 0) await this.ipsetRestore(plan.ipsetBefore);
    for (const { input } of plan.iptables) await this.iptablesRestore(input);
    if (plan.ipsetAfter.length > 0) await this.ipsetRestore(plan.ipsetAfter);
  }

  private async readKernel(): Promise<KernelFirewall> {
    const [tables, sets] = await Promise.all([this.readTables(), this.runner.run('ipset', ['save'])]);
    return { tables, sets: parseIpsetSave(sets, this.family) };
  }

  private async readTables(): Promise<Record<Table, SavedTable>> {
    const save = (table: Table): Promise<string> => this.runner.run(`${this.tool}-save`, ['-t', table]);
    const [filter, nat] = await Promise.all([save('filter'), save('nat')]);
    return { filter: parseIptablesSave(filter), nat: parseIptablesSave(nat) };
  }

  private async iptablesRestore(input: string): Promise<void> {
    // --wait: legacy iptables shares a lock with every other writer; nft ignores it.
    await this.runner.run(`${this.tool}-restore`, ['--noflush', '--wait=10'], input);
  }

  private ipsetRestore(lines: readonly string[]): Promise<void> {
    return this.ipset.restore(lines);
  }
}

function rulesOf(applied: AppliedFirewall): CurrentFirewall['chains'] {
  const text = (table: Table): Map<string, readonly string[]> => new Map([...applied.chains[table]].map(([name, chain]) => [name, chain.text]));
  return { filter: text('filter'), nat: text('nat') };
}

/** The new cache: chains not rewritten keep the kernel spelling a check recorded. */
function nextApplied(previous: AppliedFirewall | undefined, desired: NormalFirewall, plan: FirewallPlan, family: Family): AppliedFirewall {
  const chains = (table: Table): Map<string, AppliedChain> => {
    const rewritten = new Set(plan.rewritten[table]);
    const text = renderChains(desired.chains[table], family);
    return new Map(
      [...desired.chains[table]].map(([name, rules]): [string, AppliedChain] => {
        const saved = rewritten.has(name) ? undefined : previous?.chains[table].get(name)?.saved;
        const chain = { rules, text: text.get(name)! };
        return [name, saved === undefined ? chain : { ...chain, saved }];
      }),
    );
  };
  return { sets: desired.sets, chains: { filter: chains('filter'), nat: chains('nat') } };
}
