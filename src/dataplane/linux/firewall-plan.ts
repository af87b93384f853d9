/**
 * Pure half of the firewall: render Sluice's rules to `iptables-restore`
 * text, read Sluice's part of `iptables-save` and `ipset save`, plan the
 * restore inputs that turn the current state into the desired one (or apply
 * a change), and compare the kernel with what was last applied.
 *
 * Decisions come from the last-applied desired state, not from parsing rules
 * (the kernel rewrites rule text: `-s 10.0.0.1` comes back as
 * `-s 10.0.0.1/32`). A kernel read only says which chains and sets exist and
 * what the sets hold; chains whose rules are unknown are rewritten whole.
 * Kernel output is the one place rule text is parsed (ruleWords): hooks are
 * found by comment and target, counters are told apart by them, and the
 * first check after a write compares comments and targets, since the kernel
 * respells everything else.
 *
 * Each family is planned alone, with its own tools' text (iptables or
 * ip6tables) and its own sets (`sluice-…` or `sluice6…`) out of the one
 * `ipset save` both share.
 *
 * One file: what is rendered and what is read back from the kernel must agree
 * on rule text (hooks, comments, targets), so the writers and readers stay
 * side by side.
 */
import { DataplaneError } from '../../errors';
import { renderRule, ruleTarget, type Rule } from '../../firewall/rule';
import type { Family } from '../../net/ip';
import { TABLES, type IpSetType, type NormalChange, type NormalFirewall, type SetContent, type Table } from '../../firewall/state';
import type { RuleCounter } from '../dataplane';
import {
  ALL_SLUICE_IFACES,
  CHAIN_PREFIX,
  DNAT_CHAIN,
  FORWARD_CHAIN,
  HOOK_COMMENT,
  INPUT_CHAIN,
  POSTROUTING_CHAIN,
  VXLAN_DEVICE,
  ipsetPrefix,
  tempIpset,
} from '../../firewall/names';
import { batchInput, batchLine } from './command-runner';

/** A jump from a built-in chain to one of ours (or a static rule), inserted once at the top of the built-in chain. */
export interface Hook {
  table: Table;
  chain: string;
  target: string;
  /** HOOK_COMMENT, or it with a suffix where one built-in chain has two hooks of the same target. */
  comment: string;
  rule: string;
}

function hook(table: Table, chain: string, match: string, target: string, targetOptions = '', comment = HOOK_COMMENT): Hook {
  return { table, chain, target, comment, rule: `${match}-m comment --comment "${comment}" -j ${target}${targetOptions}` };
}

/** How a hook is known in a kernel read. */
function hookKey(chain: string, target: string, comment: string): string {
  return `${chain}>${target}>${comment}`;
}

/** In insertion order: each goes in at the top, so a built-in chain runs its hooks from the last one here up. */
function familyHooks(loopback: string): readonly Hook[] {
  return [
    hook('filter', 'FORWARD', '', FORWARD_CHAIN),
    // Established traffic of sluice veths, most of all packets, accepted with one conntrack match
    // before the jump into SLUICE-FORWARD: its jump and first rules cost ~4% of host-gw throughput.
    hook('filter', 'FORWARD', batchLine`-o ${ALL_SLUICE_IFACES} -m conntrack --ctstate RELATED,ESTABLISHED `, 'ACCEPT', '', `${HOOK_COMMENT}: established to workload`),
    hook('filter', 'FORWARD', batchLine`-i ${ALL_SLUICE_IFACES} -m conntrack --ctstate RELATED,ESTABLISHED `, 'ACCEPT', '', `${HOOK_COMMENT}: established from workload`),
    hook('filter', 'INPUT', '', INPUT_CHAIN),
    hook('nat', 'PREROUTING', '-m addrtype --dst-type LOCAL ', DNAT_CHAIN),
    // Not for loopback destinations: DNAT there would need route_localnet (IPv6 has none).
    hook('nat', 'OUTPUT', `-m addrtype --dst-type LOCAL ! -d ${loopback} `, DNAT_CHAIN),
    hook('nat', 'POSTROUTING', '', POSTROUTING_CHAIN),
    // Containers may have the underlay's MTU, the tunnel has less: a TCP handshake into it, either
    // way, settles on segments that fit (inserted last, so above the hooks that accept: the
    // SYN-ACK is established already).
    hook('filter', 'FORWARD', batchLine`-o ${VXLAN_DEVICE} -p tcp --tcp-flags SYN,RST SYN `, 'TCPMSS', ' --clamp-mss-to-pmtu'),
  ];
}

/** The same hooks in iptables and ip6tables; only the loopback range differs. */
export const HOOKS: Readonly<Record<Family, readonly Hook[]>> = { 4: familyHooks('127.0.0.0/8'), 6: familyHooks('::1/128') };

/** Sluice's part of one table as `iptables-save -t TABLE` shows it. */
export interface SavedTable {
  /** Chain → rule lines after `-A CHAIN `, in the kernel's spelling. */
  chains: Map<string, string[]>;
  /** Hooks present, as hookKey gives them. */
  hooks: Set<string>;
}

export function parseIptablesSave(text: string): SavedTable {
  const chains = new Map<string, string[]>();
  const hooks = new Set<string>();
  for (const line of text.split('\n')) {
    const declared = /^:(\S+) /.exec(line);
    if (declared?.[1]?.startsWith(CHAIN_PREFIX)) {
      chains.set(declared[1], chains.get(declared[1]) ?? []);
      continue;
    }
    const appended = /^-A (\S+) (.*)$/.exec(line);
    if (appended?.[1] === undefined || appended[2] === undefined) continue;
    const [, chain, rule] = appended;
    if (chain.startsWith(CHAIN_PREFIX)) {
      const rules = chains.get(chain) ?? [];
      rules.push(rule);
      chains.set(chain, rules);
    } else {
      const comment = ruleComments(rule).find((c) => c === HOOK_COMMENT || c.startsWith(`${HOOK_COMMENT}: `));
      if (comment !== undefined) hooks.add(hookKey(chain, savedTarget(rule) ?? '', comment));
    }
  }
  return { chains, hooks };
}

/** The counted rules of Sluice's chains in `iptables-save -c` output (`[PACKETS:BYTES] -A CHAIN RULE`). */
export function parseRuleCounters(text: string): RuleCounter[] {
  return text.split('\n').flatMap((line): RuleCounter[] => {
    const [, packets, bytes, chain, rule] = /^\[(\d+):(\d+)\] -A (\S+) (.*)$/.exec(line) ?? [];
    if (chain === undefined || rule === undefined || !chain.startsWith(CHAIN_PREFIX)) return [];
    const comment = ruleComments(rule)[0];
    const target = savedTarget(rule);
    if (comment === undefined || target === undefined) return [];
    return [{ chain, comment, target, packets: Number(packets), bytes: Number(bytes) }];
  });
}

/** One family's Sluice sets (including a leftover scratch set) as `ipset save` shows them. */
export function parseIpsetSave(text: string, family: Family = 4): Map<string, SetContent> {
  const prefix = ipsetPrefix(family);
  const sets = new Map<string, SetContent>();
  for (const line of text.split('\n')) {
    const [verb, name, value] = line.split(' ');
    if (name === undefined || value === undefined || !name.startsWith(prefix)) continue;
    if (verb === 'create') sets.set(name, { type: value as IpSetType, members: new Set() });
    else if (verb === 'add') sets.get(name)?.members.add(value);
  }
  return sets;
}

/**
 * What the planner starts from: either the last applied state (rules known)
 * or a kernel read (rules `undefined`: unknown, so rewritten).
 */
export interface CurrentFirewall {
  sets: ReadonlyMap<string, SetContent>;
  chains: Readonly<Record<Table, ReadonlyMap<string, readonly string[] | undefined>>>;
  hooks: HookRepair;
}

export function currentFromKernel(saved: Readonly<Record<Table, SavedTable>>, sets: ReadonlyMap<string, SetContent>, family: Family = 4): CurrentFirewall {
  const chains = { filter: new Map<string, undefined>(), nat: new Map<string, undefined>() };
  for (const table of TABLES) for (const name of saved[table].chains.keys()) chains[table].set(name, undefined);
  return { sets, chains, hooks: hookRepair(saved, family) };
}

export function missingHooks(saved: Readonly<Record<Table, SavedTable>>, family: Family = 4): Hook[] {
  return HOOKS[family].filter((h) => !saved[h.table].hooks.has(hookKey(h.chain, h.target, h.comment)));
}

/** Hooks to delete, then hooks to insert, in these orders. */
export interface HookRepair {
  remove: readonly Hook[];
  insert: readonly Hook[];
}

export const NO_HOOK_REPAIR: HookRepair = { remove: [], insert: [] };

/**
 * Puts missing hooks back. The hooks of one built-in chain go in together: where one is missing
 * (one a later version added, say), the others there are deleted and all inserted again, so
 * their order holds (a lone insert at the top could put an accept above the MSS clamp).
 */
export function hookRepair(saved: Readonly<Record<Table, SavedTable>>, family: Family = 4): HookRepair {
  const missing = missingHooks(saved, family);
  const broken = new Set(missing.map((h) => `${h.table} ${h.chain}`));
  const insert = HOOKS[family].filter((h) => broken.has(`${h.table} ${h.chain}`));
  return { remove: insert.filter((h) => !missing.includes(h)), insert };
}

export interface FirewallPlan {
  /** `ipset restore -exist` input run first: creates, member additions, swaps. */
  ipsetBefore: string[];
  /** Per changed table, the whole `iptables-restore --noflush` input. */
  iptables: { table: Table; input: string }[];
  /** `ipset restore -exist` input run last, when no rule refers to what it removes. */
  ipsetAfter: string[];
  /** Chains written, for the caller's bookkeeping (their kernel spelling is now unknown). */
  rewritten: Record<Table, string[]>;
}

/** The kernel's default of 65536 is reachable by a large cluster; Felix uses this. */
const SET_OPTIONS = 'hashsize 1024 maxelem 1048576';
/** Above this many member changes a set is refilled in a scratch set and swapped in, atomically. */
export const SWAP_THRESHOLD = 1000;

function createSet(name: string, type: IpSetType, family: Family): string {
  return `${batchLine`create ${name} ${type}`} family ${family === 4 ? 'inet' : 'inet6'} ${SET_OPTIONS}`;
}

export function planFirewall(current: CurrentFirewall, desired: NormalFirewall, family: Family = 4): FirewallPlan {
  const ipsetBefore: string[] = [];
  const ipsetAfter: string[] = [];
  const temp = tempIpset(family);
  if (current.sets.has(temp)) ipsetBefore.push(batchLine`destroy ${temp}`); // left by an interrupted swap
  const create = (name: string, type: IpSetType): string => createSet(name, type, family);
  const add = (name: string, member: string): string => batchLine`add ${name} ${member}`;

  for (const [name, want] of desired.sets) {
    const have = current.sets.get(name);
    if (have === undefined) {
      ipsetBefore.push(create(name, want.type), ...[...want.members].map((m) => add(name, m)));
      continue;
    }
    if (have.type !== want.type) {
      // Set names are derived from their content, so this is someone else's set under our prefix.
      throw new DataplaneError(`ipset ${name} exists as ${have.type}, wanted ${want.type}; destroy it by hand`);
    }
    const adds = [...want.members].filter((m) => !have.members.has(m));
    const dels = [...have.members].filter((m) => !want.members.has(m));
    if (adds.length + dels.length > SWAP_THRESHOLD) {
      ipsetBefore.push(
        create(temp, want.type),
        ...[...want.members].map((m) => add(temp, m)),
        batchLine`swap ${temp} ${name}`,
        batchLine`destroy ${temp}`,
      );
    } else {
      ipsetBefore.push(...adds.map((m) => add(name, m)));
      ipsetAfter.push(...dels.map((m) => batchLine`del ${name} ${m}`));
    }
  }
  for (const name of current.sets.keys()) {
    if (name !== temp && !desired.sets.has(name)) ipsetAfter.push(batchLine`destroy ${name}`);
  }

  const iptables: FirewallPlan['iptables'] = [];
  const rewritten: Record<Table, string[]> = { filter: [], nat: [] };
  for (const table of TABLES) {
    const have = current.chains[table];
    const want = renderChains(desired.chains[table], family);
    const dirty = [...want].filter(([name, rules]) => !sameRules(have.get(name), rules));
    const removed = [...have.keys()].filter((name) => !want.has(name));
    const input = tableInput(table, new Map(dirty), removed, hooksOf(current.hooks, table));
    if (input === undefined) continue;
    iptables.push({ table, input });
    rewritten[table] = dirty.map(([name]) => name);
  }
  return { ipsetBefore, iptables, ipsetAfter, rewritten };
}

/**
 * The restore inputs of a change, from the last applied state: set members
 * added before and removed after the chains the change rewrites. Nothing
 * is compared or re-read: the change says what differs.
 */
export function planChange(change: NormalChange, family: Family = 4): FirewallPlan {
  const ipsetBefore = [
    ...[...change.created].flatMap(([name, set]) => [createSet(name, set.type, family), ...[...set.members].map((m) => batchLine`add ${name} ${m}`)]),
    ...[...change.add].flatMap(([name, members]) => members.map((m) => batchLine`add ${name} ${m}`)),
  ];
  const ipsetAfter = [
    ...[...change.remove].flatMap(([name, members]) => members.map((m) => batchLine`del ${name} ${m}`)),
    ...change.destroyed.map((name) => batchLine`destroy ${name}`),
  ];
  const iptables: FirewallPlan['iptables'] = [];
  const rewritten: Record<Table, string[]> = { filter: [], nat: [] };
  for (const table of TABLES) {
    const input = tableInput(table, renderChains(change.chains[table], family), change.removedChains[table], NO_HOOK_REPAIR);
    if (input === undefined) continue;
    iptables.push({ table, input });
    rewritten[table] = [...change.chains[table].keys()];
  }
  return { ipsetBefore, iptables, ipsetAfter, rewritten };
}

/** Chains as iptables-restore (ip6tables-restore) lines after `-A CHAIN `. */
export function renderChains(chains: ReadonlyMap<string, readonly Rule[]>, family: Family = 4): Map<string, string[]> {
  return new Map([...chains].map(([name, rules]) => [name, rules.map((rule) => renderRule(rule, family))]));
}

/** One table's `iptables-restore --noflush` input, or undefined when there is nothing to write. */
function tableInput(table: Table, dirty: ReadonlyMap<string, readonly string[]>, removed: readonly string[], hooks: HookRepair): string | undefined {
  if (dirty.size + removed.length + hooks.insert.length === 0) return undefined;
  // Declaring a chain in --noflush mode creates it or flushes it; flushing
  // removed chains first drops their references to sets and other chains.
  return batchInput([
    `*${table}`,
    ...[...dirty.keys(), ...removed].map(declareChain),
    ...[...dirty].flatMap(([name, rules]) => rules.map((rule) => `${batchLine`-A ${name}`} ${rule}`)),
    ...hookLines(hooks),
    ...removed.map((name) => batchLine`-X ${name}`),
    'COMMIT',
  ]);
}

/** `iptables-restore --noflush`: creates the chain, or flushes it if it exists. */
export function declareChain(name: string): string {
  return batchLine`:${name} - [0:0]`;
}

/** One table's part of a repair. */
export function hooksOf(repair: HookRepair, table: Table): HookRepair {
  return { remove: repair.remove.filter((h) => h.table === table), insert: repair.insert.filter((h) => h.table === table) };
}

/** iptables-restore lines of a repair (of one table). */
export function hookLines(repair: HookRepair): string[] {
  return [...repair.remove.map((h) => `${batchLine`-D ${h.chain}`} ${h.rule}`), ...repair.insert.map((h) => `${batchLine`-I ${h.chain} 1`} ${h.rule}`)];
}

function sameRules(have: readonly string[] | undefined, want: readonly string[]): boolean {
  return have !== undefined && have.length === want.length && have.every((rule, i) => rule === want[i]);
}

/**
 * What was applied, with each chain's rules in the kernel's spelling once a
 * check has seen them (`saved`): from then on the check is exact.
 */
export interface AppliedChain {
  rules: readonly Rule[];
  /** As written to iptables-restore. */
  text: readonly string[];
  saved?: readonly string[];
}

export interface AppliedFirewall {
  sets: Map<string, SetContent>;
  chains: Record<Table, Map<string, AppliedChain>>;
}

/**
 * Differences between the kernel and what was applied. A chain not seen since
 * it was written is compared loosely (rule count, comments, targets), as the
 * kernel respells rules; when it matches, its kernel spelling is recorded in
 * `applied` so later checks compare text exactly.
 */
export function compareWithKernel(
  applied: AppliedFirewall,
  saved: Readonly<Record<Table, SavedTable>>,
  sets: ReadonlyMap<string, SetContent>,
  family: Family = 4,
): string[] {
  const problems: string[] = [];
  for (const table of TABLES) {
    for (const [name, chain] of applied.chains[table]) {
      const kernel = saved[table].chains.get(name);
      if (kernel === undefined) problems.push(`${table} chain ${name} is missing`);
      else if (chain.saved !== undefined ? !sameRules(chain.saved, kernel) : !looselySame(chain.rules, kernel)) {
        problems.push(`${table} chain ${name} has ${kernel.length} rules that differ from the ${chain.rules.length} applied`);
      } else chain.saved ??= kernel;
    }
    for (const name of saved[table].chains.keys()) {
      if (!applied.chains[table].has(name)) problems.push(`${table} chain ${name} is not Sluice's current state`);
    }
  }
  problems.push(...missingHooks(saved, family).map((h) => `hook "${h.comment}" from ${h.table} ${h.chain} to ${h.target} is missing`));
  for (const [name, want] of applied.sets) {
    const have = sets.get(name);
    if (have === undefined) problems.push(`ipset ${name} is missing`);
    else if (have.type !== want.type) problems.push(`ipset ${name} is ${have.type}, applied ${want.type}`);
    else if (have.members.size !== want.members.size || [...want.members].some((m) => !have.members.has(m))) {
      problems.push(`ipset ${name} holds ${have.members.size} members that differ from the ${want.members.size} applied`);
    }
  }
  for (const name of sets.keys()) if (!applied.sets.has(name)) problems.push(`ipset ${name} is not Sluice's current state`);
  return family === 4 ? problems : problems.map((problem) => `IPv6 ${problem}`);
}

function looselySame(applied: readonly Rule[], kernel: readonly string[]): boolean {
  const key = (comments: string[], target: string | undefined): string => JSON.stringify([comments, target]);
  return applied.length === kernel.length && applied.every((rule, i) => key([rule.comment], ruleTarget(rule.action)) === key(ruleComments(kernel[i] ?? ''), savedTarget(kernel[i] ?? '')));
}

/** A quoted argument of an iptables rule, in double (with backslash escapes) or single quotes. */
const QUOTED = /"((?:[^"\\]|\\.)*)"|'([^']*)'/g;

/** Splits a rule as `iptables-save` prints it into arguments, the way iptables-restore does (double and single quotes). */
export function ruleWords(rule: string): string[] {
  const words: string[] = [];
  const pattern = new RegExp(`${QUOTED.source}|(\\S+)`, 'g');
  for (const match of rule.matchAll(pattern)) {
    words.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? match[3] ?? ''));
  }
  return words;
}

/** The chain or target a saved rule jumps or goes to (`-j`/`-g`), if any. */
export function savedTarget(rule: string): string | undefined {
  const words = ruleWords(rule);
  let target: string | undefined;
  words.forEach((word, i) => {
    if (word === '-j' || word === '--jump' || word === '-g' || word === '--goto') target = words[i + 1];
  });
  return target;
}

/** The `--comment` texts of a saved rule, in order. */
export function ruleComments(rule: string): string[] {
  const words = ruleWords(rule);
  const comments: string[] = [];
  words.forEach((word, i) => {
    const text = words[i + 1];
    if (word === '--comment' && text !== undefined) comments.push(text);
  });
  return comments;
}
