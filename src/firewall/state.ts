/**
 * What Sluice wants in ipset and iptables, as values, and the change from one
 * such state to the next. Pure checks and normal form are here, shared by the
 * Linux dataplane and the recording fake so both accept and reject the same
 * input. The normal form is what gets compared: set members as the kernel
 * prints them, the top-level chains always present (the built-in chains jump
 * to them, so they are emptied, never deleted).
 *
 * One file: normalizing a state or a change is checking it (names, rules,
 * members), so the checks and the normal form cannot drift apart.
 */
import { DataplaneError } from '../errors';
import * as ip from '../net/ip';
import { formatCidr, formatIp, parseCidr, parseIp } from '../net/ipv4';
import { CHAIN_PREFIX, DNAT_CHAIN, FORWARD_CHAIN, INPUT_CHAIN, POSTROUTING_CHAIN, ipsetPrefix, isSluiceIpset, tempIpset } from './names';
import type { Match, PortRange, Rule } from './rule';

/**
 * hash:net,iface members are "CIDR,IFNAME"; hash:ip,port members are
 * "IP,PROTO:PORT" (tcp or udp). See rule.ts for how rules match them.
 */
export type IpSetType = 'hash:ip' | 'hash:net' | 'hash:net,iface' | 'hash:ip,port';

export interface IpSet {
  name: string;
  type: IpSetType;
  members: string[];
}

export interface Chain {
  name: string;
  rules: Rule[];
}

/**
 * Everything Sluice wants in iptables and ipset, for one family: IPv4's sets
 * are named `sluice-…`, IPv6's `sluice6…` and hold IPv6 members (see
 * family.ts); both have the same chains in their own tables. Top-level chains
 * (SLUICE-FORWARD, SLUICE-INPUT in filter; SLUICE-DNAT, SLUICE-POSTROUTING in
 * nat) are hooked once from the built-in chains by the dataplane.
 */
export interface FirewallState {
  ipsets: IpSet[];
  filter: Chain[];
  nat: Chain[];
}

export type Table = 'filter' | 'nat';
export const TABLES: readonly Table[] = ['filter', 'nat'];

export const TOP_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [FORWARD_CHAIN, INPUT_CHAIN],
  nat: [DNAT_CHAIN, POSTROUTING_CHAIN],
};

/**
 * From one FirewallState to the next, touching only what differs: what a
 * container starting elsewhere costs is a few set members. Applied in this
 * order, so no rule ever refers to a set or chain that does not exist:
 * created sets and added members, then chains, then removed members and
 * destroyed sets.
 */
export interface FirewallChange {
  createdSets: IpSet[];
  /** Members of sets that exist before and after. */
  members: { name: string; add: string[]; remove: string[] }[];
  /** Chains created or rewritten whole. */
  chains: { table: Table; chain: Chain }[];
  /** No remaining rule jumps to these. */
  removedChains: { table: Table; name: string }[];
  /** No remaining rule matches these. */
  destroyedSets: string[];
}

export interface SetContent {
  type: IpSetType;
  members: Set<string>;
}

export interface NormalFirewall {
  sets: Map<string, SetContent>;
  /** Per table: chain name → rules. */
  chains: Record<Table, Map<string, readonly Rule[]>>;
}

/** Rejects what the kernel would refuse half-way or what Sluice could not clean up later. */
/** A change that changes nothing (an endpoint of the other family, say): nothing to send. */
export function isEmptyChange(change: FirewallChange): boolean {
  return change.createdSets.length + change.members.length + change.chains.length + change.removedChains.length + change.destroyedSets.length === 0;
}

export function normalizeFirewall(state: FirewallState, family: ip.Family = 4): NormalFirewall {
  const sets = new Map<string, SetContent>();
  for (const set of state.ipsets) {
    checkSetName(set.name, family);
    if (sets.has(set.name)) invalid(`ipset "${set.name}" given twice`);
    sets.set(set.name, normalSet(set, family));
  }
  const chains = { filter: normalizeTable('filter', state.filter), nat: normalizeTable('nat', state.nat) };
  for (const table of TABLES) {
    for (const [name, rules] of chains[table]) checkRules(family, table, name, rules, (chain) => chains[table].has(chain), (set) => sets.has(set));
  }
  return { sets, chains };
}

function normalizeTable(table: Table, given: readonly Chain[]): Map<string, readonly Rule[]> {
  const chains = new Map<string, readonly Rule[]>();
  for (const chain of given) {
    checkChainName(chain.name);
    if (chains.has(chain.name)) invalid(`chain "${chain.name}" given twice in ${table}`);
    chains.set(chain.name, chain.rules);
  }
  for (const top of TOP_CHAINS[table]) if (!chains.has(top)) chains.set(top, []);
  return chains;
}

/** A FirewallChange checked against the state it applies to, members spelled as `ipset save` does. */
export interface NormalChange {
  created: Map<string, SetContent>;
  add: Map<string, string[]>;
  remove: Map<string, string[]>;
  chains: Record<Table, Map<string, readonly Rule[]>>;
  removedChains: Record<Table, string[]>;
  destroyed: string[];
}

/**
 * Checks `change` against `current` (what was last applied): sets it adds to
 * exist, chains and sets its rules refer to exist once it is applied, names
 * are Sluice's. Costs what the change holds, not what the state holds.
 */
export function normalizeChange(
  current: { sets: ReadonlyMap<string, SetContent>; chains: Readonly<Record<Table, ReadonlyMap<string, unknown>>> },
  change: FirewallChange,
  family: ip.Family = 4,
): NormalChange {
  const destroyed = new Set(change.destroyedSets);
  const created = new Map<string, SetContent>();
  for (const set of change.createdSets) {
    checkSetName(set.name, family);
    if ((current.sets.has(set.name) && !destroyed.has(set.name)) || created.has(set.name)) invalid(`ipset "${set.name}" exists already`);
    created.set(set.name, normalSet(set, family));
  }
  for (const name of destroyed) {
    if (!current.sets.has(name) || created.has(name)) invalid(`ipset "${name}" is not there to destroy`);
  }
  const setAfter = (name: string): SetContent | undefined => (destroyed.has(name) ? undefined : (created.get(name) ?? current.sets.get(name)));
  const add = new Map<string, string[]>();
  const remove = new Map<string, string[]>();
  for (const { name, add: added, remove: removed } of change.members) {
    const set = setAfter(name);
    if (set === undefined || created.has(name)) invalid(`ipset "${name}" changes members but is not in the state`);
    add.set(name, added.map((m) => canonicalMember(set.type, m, name, family)));
    remove.set(name, removed.map((m) => canonicalMember(set.type, m, name, family)));
  }
  const chains: NormalChange['chains'] = { filter: new Map(), nat: new Map() };
  const removedChains: NormalChange['removedChains'] = { filter: [], nat: [] };
  for (const { table, name } of change.removedChains) {
    if (!current.chains[table].has(name) || TOP_CHAINS[table].includes(name)) invalid(`${table} chain "${name}" cannot be removed`);
    removedChains[table].push(name);
  }
  for (const { table, chain } of change.chains) {
    checkChainName(chain.name);
    if (chains[table].has(chain.name) || removedChains[table].includes(chain.name)) invalid(`chain "${chain.name}" given twice in ${table}`);
    chains[table].set(chain.name, chain.rules);
  }
  for (const table of TABLES) {
    const chainAfter = (name: string): boolean => chains[table].has(name) || (current.chains[table].has(name) && !removedChains[table].includes(name));
    for (const [name, rules] of chains[table]) checkRules(family, table, name, rules, chainAfter, (set) => setAfter(set) !== undefined);
  }
  return { created, add, remove, chains, removedChains, destroyed: [...destroyed] };
}

/** Makes `normal` the state after `change`, in place. */
export function applyNormalChange(normal: NormalFirewall, change: NormalChange): void {
  applySetChanges(normal.sets, change);
  for (const table of TABLES) {
    for (const name of change.removedChains[table]) normal.chains[table].delete(name);
    for (const [name, rules] of change.chains[table]) normal.chains[table].set(name, rules);
  }
}

/** Makes `sets` the sets after `change`, in place. */
export function applySetChanges(sets: Map<string, SetContent>, change: NormalChange): void {
  for (const name of change.destroyed) sets.delete(name);
  for (const [name, set] of change.created) sets.set(name, set);
  for (const [name, members] of change.add) for (const m of members) sets.get(name)!.members.add(m);
  for (const [name, members] of change.remove) for (const m of members) sets.get(name)!.members.delete(m);
}

/** A set of the other family would be created by this family's firewall but never read back (nor destroyed) by it. */
function checkSetName(name: string, family: ip.Family): void {
  if (!name.startsWith(ipsetPrefix(family)) || name === tempIpset(family) || !KERNEL_NAME.test(name)) {
    invalid(`ipset name "${name}" is not Sluice's for IPv${family} (${ipsetPrefix(family)}…)`);
  }
}

function normalSet(set: IpSet, family: ip.Family): SetContent {
  return { type: set.type, members: new Set(set.members.map((m) => canonicalMember(set.type, m, set.name, family))) };
}

function checkChainName(name: string): void {
  if (!name.startsWith(CHAIN_PREFIX) || !KERNEL_NAME.test(name)) invalid(`chain name "${name}" is not Sluice's`);
}

/** Set and chain names Sluice makes: letters, digits and `-_.`, within the kernel's 31 characters. */
const KERNEL_NAME = /^[\w.-]{1,31}$/;
/** Interface names as the kernel takes them: 1 to 15 (IFNAMSIZ - 1) characters, none of them blank, quote, "/" or ","; `+` ends a prefix. */
const IFNAME = /^[^\s/,"']{1,15}$/;
/** iptables' comment match takes 255 characters; a quote or line break would end the restore line. */
const COMMENT = /^[^"\\\n\r\0]{0,255}$/;

function checkRules(
  family: ip.Family,
  table: Table,
  chain: string,
  rules: readonly Rule[],
  hasChain: (name: string) => boolean,
  hasSet: (name: string) => boolean,
): void {
  rules.forEach((rule, i) => {
    const where = `${table} chain ${chain} rule ${i + 1}`;
    if (!COMMENT.test(rule.comment)) invalid(`${where}: comment ${JSON.stringify(rule.comment)} has a quote, backslash or line break, or is too long`);
    for (const match of rule.matches) {
      const problem = matchProblem(match, family, hasSet);
      if (problem !== undefined) invalid(`${where}: ${problem}`);
    }
    const action = rule.action;
    // A jump to a chain that will not exist fails the whole restore; say which rule.
    if (action.kind === 'jump' && !(KERNEL_NAME.test(action.chain) && (!action.chain.startsWith(CHAIN_PREFIX) || hasChain(action.chain)))) {
      invalid(`${where} jumps to ${action.chain}, which is not in the state`);
    }
    if (action.kind === 'DNAT' && (!isAddress(action.address, family) || !validPort(action.port))) {
      invalid(`${where}: DNAT to "${action.address}:${action.port}" is not an IPv${family} address and port`);
    }
  });
}

function matchProblem(match: Match, family: ip.Family, hasSet: (name: string) => boolean): string | undefined {
  switch (match.kind) {
    case 'in-interface':
    case 'out-interface':
      return IFNAME.test(match.name) ? undefined : `"${match.name}" is not an interface name`;
    case 'destination':
      return isAddress(match.address, family) ? undefined : `"${match.address}" is not an IPv${family} address`;
    case 'destination-port':
      return validRange(match.ports) ? undefined : 'bad destination port';
    case 'multiport':
      return match.ports.length > 0 && match.ports.every(validRange) ? undefined : 'bad multiport list';
    case 'set':
      // Else the restore fails, or worse succeeds and the set's destroy fails after it; the
      // other family's sets are never in the state (ip6tables refuses an inet set, and back).
      if (!KERNEL_NAME.test(match.set)) return `"${match.set}" is not an ipset name`;
      return isSluiceIpset(match.set) && !hasSet(match.set) ? `matches ipset ${match.set}, which is not in the state` : undefined;
    default:
      return undefined;
  }
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function validRange(range: PortRange): boolean {
  return validPort(range.first) && validPort(range.last) && range.first <= range.last;
}

/**
 * Members as `ipset save` prints them: plain IPs, networks with host bits
 * cleared, no "/32" (IPv6: "/128", RFC 5952 text); ",IFNAME" kept.
 */
function canonicalMember(type: IpSetType, member: string, setName: string, family: ip.Family): string {
  const bad = (what: string): never => invalid(`ipset ${setName} (${type}): "${member}" is not ${what}`);
  const v = `IPv${family}`;
  if (type === 'hash:net,iface') {
    const comma = member.indexOf(',');
    const ifname = member.slice(comma + 1);
    const net = comma < 0 || !IFNAME.test(ifname) ? undefined : canonicalNet(member.slice(0, comma), true, family);
    return net === undefined ? bad(`an ${v} network and an interface name (NETWORK,IFNAME)`) : `${net},${ifname}`;
  }
  if (type === 'hash:ip,port') {
    const match = /^([^,]+),(tcp|udp):(\d{1,5})$/.exec(member);
    const address = match === null ? undefined : canonicalNet(match[1]!, false, family);
    const port = Number(match?.[3]);
    return address === undefined || !validPort(port) ? bad(`an ${v} address, a protocol and a port (IP,tcp:PORT)`) : `${address},${match![2]}:${port}`;
  }
  return canonicalNet(member, type === 'hash:net', family) ?? bad(`an ${v} ${type === 'hash:net' ? 'network' : 'address'}`);
}

function canonicalNet(text: string, networks: boolean, family: ip.Family): string | undefined {
  if (family === 6) return canonicalNet6(text, networks);
  const address = parseIp(text.endsWith('/32') ? text.slice(0, -3) : text);
  if (address !== undefined) return formatIp(address);
  const cidr = networks ? parseCidr(text) : undefined;
  return cidr === undefined ? undefined : formatCidr(cidr);
}

/** Through net/ip.ts (bigint); IPv4 members keep ipv4.ts's cheaper numbers. */
function canonicalNet6(text: string, networks: boolean): string | undefined {
  const address = ip.parseIp(text.endsWith('/128') ? text.slice(0, -4) : text);
  if (address !== undefined) return address.family === 6 ? ip.formatIp(address) : undefined;
  const cidr = networks ? ip.parseCidr(text) : undefined;
  return cidr?.family === 6 ? ip.formatCidr(cidr) : undefined;
}

function isAddress(text: string, family: ip.Family): boolean {
  return family === 4 ? parseIp(text) !== undefined : ip.parseIp(text)?.family === 6;
}

function invalid(message: string): never {
  throw new DataplaneError(`invalid firewall state: ${message}`);
}

// ---- member order ----

/**
 * Where a member sorts: numerically by address ("10.0.0.2" before
 * "10.0.0.10"), then prefix length. Computed once per member, never in a
 * comparator; equal keys fall back to the text (an interface after a comma).
 */
function memberSortKey(member: string): number {
  const comma = member.indexOf(',');
  const [ip, prefix] = (comma < 0 ? member : member.slice(0, comma)).split('/');
  return (parseIp(ip ?? '') ?? 0) * 64 + Number(prefix ?? 32);
}

interface KeyedMember {
  member: string;
  key: number;
}

function compareKeyed(a: KeyedMember, b: KeyedMember): number {
  return a.key - b.key || compareText(a.member, b.member);
}

/** Members in set order, duplicates dropped: how every FirewallState lists them. */
export function sortMembers(members: readonly string[]): string[] {
  return [...new Set(members)]
    .map((member) => ({ member, key: memberSortKey(member) }))
    .sort(compareKeyed)
    .map((k) => k.member);
}

/** Puts `member` into `sorted` (in set order) where it belongs; no-op when there. */
export function insertMember(sorted: string[], member: string): void {
  const wanted = { member, key: memberSortKey(member) };
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const here = sorted[middle]!;
    const order = compareKeyed({ member: here, key: memberSortKey(here) }, wanted);
    if (order === 0) return;
    if (order < 0) low = middle + 1;
    else high = middle;
  }
  sorted.splice(low, 0, member);
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => compareText(a.name, b.name));
}
