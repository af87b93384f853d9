/**
 * Pure checks and normal form of a FirewallState, shared by the Linux
 * dataplane and the recording fake so both accept and reject the same input.
 * The normal form is what gets compared: set members as the kernel prints
 * them, the top-level chains always present (the built-in chains jump to
 * them, so they are emptied, never deleted).
 */
import { DataplaneError } from '../errors';
import { formatCidr, formatIp, parseCidr, parseIp } from '../net/ipv4';
import type { FirewallState, IpSetType } from './dataplane';
import { CHAIN_PREFIX, DNAT_CHAIN, FORWARD_CHAIN, INPUT_CHAIN, IPSET_PREFIX, POSTROUTING_CHAIN, TEMP_IPSET } from './names';

export type Table = 'filter' | 'nat';
export const TABLES: readonly Table[] = ['filter', 'nat'];

export const TOP_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [FORWARD_CHAIN, INPUT_CHAIN],
  nat: [DNAT_CHAIN, POSTROUTING_CHAIN],
};

export interface SetContent {
  type: IpSetType;
  members: ReadonlySet<string>;
}

export interface NormalFirewall {
  sets: ReadonlyMap<string, SetContent>;
  /** Per table: chain name → rules (iptables-restore text after `-A CHAIN`). */
  chains: Readonly<Record<Table, ReadonlyMap<string, readonly string[]>>>;
}

/** Rejects what the kernel would refuse half-way or what Sluice could not clean up later. */
export function normalizeFirewall(state: FirewallState): NormalFirewall {
  const sets = new Map<string, SetContent>();
  for (const set of state.ipsets) {
    if (!set.name.startsWith(IPSET_PREFIX) || set.name === TEMP_IPSET) invalid(`ipset name "${set.name}" is not Sluice's`);
    if (sets.has(set.name)) invalid(`ipset "${set.name}" given twice`);
    sets.set(set.name, { type: set.type, members: new Set(set.members.map((m) => canonicalMember(set.type, m, set.name))) });
  }
  const chains = { filter: normalizeTable('filter', state.filter, sets), nat: normalizeTable('nat', state.nat, sets) };
  return { sets, chains };
}

function normalizeTable(table: Table, given: FirewallState['filter'], sets: ReadonlyMap<string, SetContent>): Map<string, readonly string[]> {
  const chains = new Map<string, readonly string[]>();
  for (const chain of given) {
    if (!chain.name.startsWith(CHAIN_PREFIX)) invalid(`chain name "${chain.name}" is not Sluice's`);
    if (chains.has(chain.name)) invalid(`chain "${chain.name}" given twice in ${table}`);
    chains.set(chain.name, [...chain.rules]);
  }
  for (const top of TOP_CHAINS[table]) if (!chains.has(top)) chains.set(top, []);
  for (const [name, rules] of chains) {
    for (const rule of rules) {
      // One rule is one line of iptables-restore input, its quoted arguments closed.
      if (/[\n\r\0]/.test(rule) || /["']/.test(rule.replace(QUOTED, ''))) {
        invalid(`${table} chain ${name}: rule ${JSON.stringify(rule)} has a line break or an unclosed quote`);
      }
      const target = ruleTarget(rule);
      // A jump to a chain that will not exist fails the whole restore; say which rule.
      if (target?.startsWith(CHAIN_PREFIX) && !chains.has(target)) {
        invalid(`${table} chain ${name} jumps to ${target}, which is not in the state`);
      }
      // Else the restore fails, or worse succeeds and the set's destroy fails after it.
      const set = ruleWords(rule).find((_, i, words) => words[i - 1] === '--match-set');
      if (set?.startsWith(IPSET_PREFIX) && !sets.has(set)) invalid(`${table} chain ${name} matches ipset ${set}, which is not in the state`);
    }
  }
  return chains;
}

/** Interface names as the kernel takes them: 1 to 15 (IFNAMSIZ - 1) characters, none of them blank, "/" or ",". */
const IFNAME = /^[^\s/,]{1,15}$/;

/** Members as `ipset save` prints them: plain IPs, networks with host bits cleared, no "/32"; ",IFNAME" kept. */
function canonicalMember(type: IpSetType, member: string, setName: string): string {
  const bad = (what: string): never => invalid(`ipset ${setName} (${type}): "${member}" is not ${what}`);
  if (type === 'hash:net,iface') {
    const comma = member.indexOf(',');
    const ifname = member.slice(comma + 1);
    const net = comma < 0 || !IFNAME.test(ifname) ? undefined : canonicalNet(member.slice(0, comma), true);
    return net === undefined ? bad('an IPv4 network and an interface name (NETWORK,IFNAME)') : `${net},${ifname}`;
  }
  if (type === 'hash:ip,port') {
    const match = /^([^,]+),(tcp|udp):(\d{1,5})$/.exec(member);
    const ip = match === null ? undefined : canonicalNet(match[1]!, false);
    const port = Number(match?.[3]);
    return ip === undefined || !(port >= 1 && port <= 65535) ? bad('an IPv4 address, a protocol and a port (IP,tcp:PORT)') : `${ip},${match![2]}:${port}`;
  }
  return canonicalNet(member, type === 'hash:net') ?? bad(type === 'hash:net' ? 'an IPv4 network' : 'an IPv4 address');
}

function canonicalNet(text: string, networks: boolean): string | undefined {
  const ip = parseIp(text.endsWith('/32') ? text.slice(0, -3) : text);
  if (ip !== undefined) return formatIp(ip);
  const cidr = networks ? parseCidr(text) : undefined;
  return cidr === undefined ? undefined : formatCidr(cidr);
}

function invalid(message: string): never {
  throw new DataplaneError(`invalid firewall state: ${message}`);
}

/** A quoted argument of an iptables rule, in double (with backslash escapes) or single quotes. */
const QUOTED = /"((?:[^"\\]|\\.)*)"|'([^']*)'/g;

/** Splits an iptables rule into arguments the way iptables-restore does (double and single quotes). */
export function ruleWords(rule: string): string[] {
  const words: string[] = [];
  const pattern = new RegExp(`${QUOTED.source}|(\\S+)`, 'g');
  for (const match of rule.matchAll(pattern)) {
    words.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? match[3] ?? ''));
  }
  return words;
}

/** The chain or target a rule jumps or goes to (`-j`/`-g`), if any. */
export function ruleTarget(rule: string): string | undefined {
  const words = ruleWords(rule);
  let target: string | undefined;
  words.forEach((word, i) => {
    if (word === '-j' || word === '--jump' || word === '-g' || word === '--goto') target = words[i + 1];
  });
  return target;
}

/** The `--comment` texts of a rule, in order. */
export function ruleComments(rule: string): string[] {
  const words = ruleWords(rule);
  const comments: string[] = [];
  words.forEach((word, i) => {
    const text = words[i + 1];
    if (word === '--comment' && text !== undefined) comments.push(text);
  });
  return comments;
}
