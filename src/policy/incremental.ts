/**
 * The policy compiler kept up to date instead of rerun: fed the cluster's
 * records after each change, it returns what changed in this host's
 * firewall, at a cost proportional to the change. A container starting
 * anywhere costs its own selector matches and a few set members; a policy,
 * network or protection change rebuilds the skeleton (chains and fixed
 * sets: small) and fills only the sets it creates.
 *
 * Invariant between updates: every tracked set holds, with a count, what
 * the current endpoints contribute to it under the current skeleton, so a
 * changed endpoint's old contribution can be recomputed from its old record
 * and taken back. compileFirewall stays the reference; state() equals it
 * byte for byte (test/unit/policy/incremental.test.ts).
 *
 * One file: one class, whose methods keep the invariant above together;
 * split, it would have no single home.
 */
import { DNAT_CHAIN, LOCAL_SET } from '../firewall/names';
import type { Rule } from '../firewall/rule';
import {
  byName,
  compareText,
  sortMembers,
  type Chain,
  type FirewallChange,
  type FirewallState,
  type IpSet,
  type IpSetType,
  type Table,
} from '../firewall/state';
import type { EndpointRecord, NetworkRecord } from '../model';
import { firewallSkeleton, knownNetwork, localMember, type Skeleton } from './compile';
import { dnatRules } from './host-chains';
import { PolicyChainCache, compilePolicy, selects, sortPolicies, type CompiledPolicy } from './policy-chains';
import type { Policy } from '../policy-document/policy';
import { NO_PROTECTION, type Protection } from './protect';
import { matches } from '../policy-document/selector';
import type { Family } from '../net/ip';
import { endpointIn, networkIn, protectionIn } from './family';

/** The cluster as the agent's view holds it: a changed record is a new object, so identity says what changed. */
export interface ClusterRecords {
  networks: ReadonlyMap<string, NetworkRecord>;
  endpoints: ReadonlyMap<string, EndpointRecord>;
  policies: ReadonlyMap<string, Policy>;
  protection?: Protection;
  dnsAddress?: string;
  /** NAT66 for IPv6 leaving the cluster (IPv4 is always masqueraded). */
  ipv6Masquerade?: boolean;
}

interface TrackedSet {
  type: IpSetType;
  /**
   * Member → how many contributions hold it. Only the count: tens of thousands of members at a
   * thousand hosts, and their order is needed only for a full state or a change's few members.
   */
  members: Map<string, number>;
}

/** What one update did, gathered as it goes and turned into a FirewallChange at the end. */
interface Pending {
  /** Set → member → whether it was there before the update. */
  touched: Map<string, Map<string, boolean>>;
  created: Set<string>;
  destroyed: Set<string>;
  /** "TABLE NAME" → the chain's new rules, or undefined when it goes. */
  chains: Map<string, { table: Table; name: string; chain: Chain | undefined }>;
}

export class IncrementalFirewall {
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** The endpoints of this node, by the same keys. */
  private readonly local = new Map<string, EndpointRecord>();
  /** The networks as last given, to tell a change; `networks` as this family sees them. */
  private networkRecords = new Map<string, NetworkRecord>();
  private networks = new Map<string, NetworkRecord>();
  private policies = new Map<string, Policy>();
  private protectionText = JSON.stringify(NO_PROTECTION);
  /** The protection that text is of: the same object again (the agent keeps it while nodes stay) needs no text. */
  private protection: Protection = NO_PROTECTION;
  private dnsAddress: string | undefined;
  private ipv6Masquerade: boolean | undefined;
  private readonly compiled = new WeakMap<Policy, CompiledPolicy>();
  private readonly policyChains = new PolicyChainCache();
  private skeleton: Skeleton;
  private readonly sets = new Map<string, TrackedSet>();
  private readonly chains: Record<Table, Map<string, Chain>> = { filter: new Map(), nat: new Map() };
  private pending: Pending = newPending();

  /**
   * Starts from the state of an empty cluster: the first update's change is relative to it, so apply state() in full first.
   * `family`: whose firewall, as compileFirewall's input says; the records given are always the view's, projected here.
   */
  constructor(
    private readonly node: string,
    private readonly family: Family = 4,
  ) {
    this.skeleton = firewallSkeleton({ networks: [], policies: [], family });
    this.adoptSkeleton(undefined);
    this.setChain('nat', { name: DNAT_CHAIN, rules: [] });
    this.pending = newPending();
  }

  /**
   * Brings the state up to `records` and returns what changed since the last
   * update. `changedEndpoints`, when given, are the only endpoint keys that
   * may have changed (added, replaced or removed); else every endpoint record
   * is compared by identity, microseconds for thousands.
   */
  update(records: ClusterRecords, changedEndpoints?: Iterable<string>): FirewallChange {
    const protection = protectionIn(records.protection ?? NO_PROTECTION, this.family);
    // Thousands of node ports at a thousand hosts: written out only when it is another object.
    const protectionText = protection === this.protection ? this.protectionText : JSON.stringify(protection);
    if (protectionText === this.protectionText) this.protection = protection;
    const structureChanged =
      !sameRecords(this.networkRecords, records.networks) ||
      !sameRecords(this.policies, records.policies) ||
      protectionText !== this.protectionText ||
      records.dnsAddress !== this.dnsAddress ||
      records.ipv6Masquerade !== this.ipv6Masquerade;
    // Built before anything changes: a policy that does not compile (a corrupt store value) throws and leaves all as it was.
    const skeleton = structureChanged
      ? firewallSkeleton(
          {
            networks: [...records.networks.values()].flatMap((n) => networkIn(n, this.family) ?? []),
            policies: sortPolicies([...records.policies.values()]).map((p) => this.compile(p)),
            protection,
            dnsAddress: records.dnsAddress,
            family: this.family,
            ipv6Masquerade: records.ipv6Masquerade,
          },
          this.policyChains,
        )
      : undefined;

    // Endpoints first, under the skeleton their current contributions were made with.
    let localChanged = false;
    const project = (e: EndpointRecord | undefined): EndpointRecord | undefined => (e === undefined ? undefined : endpointIn(e, this.family));
    for (const key of changedEndpoints ?? changedKeys(this.endpoints, records.endpoints, project)) {
      const before = this.endpoints.get(key);
      const after = project(records.endpoints.get(key));
      if (before === after) continue;
      if (before !== undefined) this.contribute(before, -1);
      if (after !== undefined) this.contribute(after, 1);
      if (before?.node === this.node || after?.node === this.node) localChanged = true;
      setOrDelete(this.endpoints, key, after);
      setOrDelete(this.local, key, after?.node === this.node ? after : undefined);
    }

    if (skeleton !== undefined) {
      this.networkRecords = new Map(records.networks);
      this.networks = new Map();
      for (const [key, record] of records.networks) {
        const network = networkIn(record, this.family);
        if (network !== undefined) this.networks.set(key, network);
      }
      this.policies = new Map(records.policies);
      this.protectionText = protectionText;
      this.protection = protection;
      this.dnsAddress = records.dnsAddress;
      this.ipv6Masquerade = records.ipv6Masquerade;
      const previous = this.skeleton;
      this.skeleton = skeleton;
      this.adoptSkeleton(previous);
    }
    if (localChanged) {
      const local = [...this.local.values()].sort((a, b) => compareText(a.hostIfname, b.hostIfname));
      this.setChain('nat', { name: DNAT_CHAIN, rules: local.flatMap(dnatRules) });
    }
    const change = this.takeChange();
    this.pending = newPending();
    return change;
  }

  /** The whole desired state: what compileFirewall gives for the records of the last update. */
  state(): FirewallState {
    const ipsets = [...this.sets].map(([name, set]): IpSet => ({ name, type: set.type, members: sortMembers([...set.members.keys()]) }));
    return { ipsets: byName(ipsets), filter: byName([...this.chains.filter.values()]), nat: byName([...this.chains.nat.values()]) };
  }

  private compile(policy: Policy): CompiledPolicy {
    let compiled = this.compiled.get(policy);
    if (compiled === undefined) {
      compiled = compilePolicy(policy, undefined, this.family);
      this.compiled.set(policy, compiled);
    }
    return compiled;
  }

  /** Adds (`sign` 1) or takes back (-1) what an endpoint puts into the selector sets and, if local, the local sets. */
  private contribute(endpoint: EndpointRecord, sign: 1 | -1): void {
    const labels = endpoint.labels;
    if (labels !== null) {
      for (const [name, selector] of this.skeleton.selectorSets) if (matches(selector, labels)) this.count(name, endpoint.address, sign);
    }
    if (endpoint.node === this.node) for (const [name, member] of this.localContributions(endpoint)) this.count(name, member, sign);
  }

  /** LOCAL_SET, the target sets of the policies selecting it, and the governed sets of their directions. */
  private localContributions(endpoint: EndpointRecord): [string, string][] {
    const network = knownNetwork(endpoint, this.networks);
    if (network === undefined) return [];
    const out: [string, string][] = [[LOCAL_SET, localMember(endpoint)]];
    const targets = new Set<string>();
    for (const [name, policy] of this.skeleton.targetSets) {
      if (selects(policy, network, endpoint.labels!)) {
        out.push([name, endpoint.address]);
        targets.add(name);
      }
    }
    for (const governed of this.skeleton.governed) if (governed.targets.some((t) => targets.has(t))) out.push([governed.name, endpoint.address]);
    return out;
  }

  /**
   * Makes sets and chains follow a new skeleton: sets it drops go, sets it
   * adds are filled (selector sets from every endpoint, once), fixed and
   * local sets are recomputed, chains that differ are replaced.
   */
  private adoptSkeleton(previous: Skeleton | undefined): void {
    const skeleton = this.skeleton;
    for (const name of [...this.sets.keys()]) if (!skeleton.types.has(name)) this.destroySet(name);
    for (const [name, type] of skeleton.types) {
      if (!this.sets.has(name)) {
        this.sets.set(name, { type, members: new Map() });
        this.pending.created.add(name);
      }
    }
    for (const set of skeleton.fixedSets) this.resetMembers(set.name, new Map(set.members.map((m) => [m, 1])));

    const added = [...skeleton.selectorSets].filter(([name]) => previous?.selectorSets.has(name) !== true);
    if (added.length > 0) {
      for (const endpoint of this.endpoints.values()) {
        const labels = endpoint.labels;
        if (labels === null) continue;
        for (const [name, selector] of added) if (matches(selector, labels)) this.count(name, endpoint.address, 1);
      }
    }

    const local = new Map<string, Map<string, number>>([[LOCAL_SET, new Map()]]);
    for (const name of [...skeleton.targetSets.keys(), ...skeleton.governed.map((g) => g.name)]) local.set(name, new Map());
    for (const endpoint of this.local.values()) {
      for (const [name, member] of this.localContributions(endpoint)) {
        const counts = local.get(name)!;
        counts.set(member, (counts.get(member) ?? 0) + 1);
      }
    }
    for (const [name, counts] of local) this.resetMembers(name, counts);

    const filter = new Map(skeleton.filter.map((chain) => [chain.name, chain]));
    for (const name of this.chains.filter.keys()) if (!filter.has(name)) this.removeChain('filter', name);
    for (const chain of filter.values()) this.setChain('filter', chain);
    this.setChain('nat', skeleton.postrouting);
  }

  private count(name: string, member: string, delta: number): void {
    const set = this.sets.get(name)!;
    const found = set.members.get(member) ?? 0;
    const count = found + delta;
    if (count < 0) throw new Error(`bug: ipset ${name} member ${member} taken back more often than added`);
    if ((found === 0) !== (count === 0)) this.touch(name, member, found !== 0);
    if (count === 0) set.members.delete(member);
    else set.members.set(member, count);
  }

  /** Makes a set's members exactly `counts`. */
  private resetMembers(name: string, counts: ReadonlyMap<string, number>): void {
    const set = this.sets.get(name)!;
    for (const member of [...set.members.keys()]) if (!counts.has(member)) this.count(name, member, -set.members.get(member)!);
    for (const [member, count] of counts) this.count(name, member, count - (set.members.get(member) ?? 0));
  }

  private touch(name: string, member: string, wasThere: boolean): void {
    let members = this.pending.touched.get(name);
    if (members === undefined) this.pending.touched.set(name, (members = new Map<string, boolean>()));
    if (!members.has(member)) members.set(member, wasThere);
  }

  private destroySet(name: string): void {
    this.sets.delete(name);
    this.pending.touched.delete(name);
    if (!this.pending.created.delete(name)) this.pending.destroyed.add(name);
  }

  private setChain(table: Table, chain: Chain): void {
    const current = this.chains[table].get(chain.name);
    if (current !== undefined && sameRules(current.rules, chain.rules)) return;
    this.chains[table].set(chain.name, chain);
    this.pending.chains.set(`${table} ${chain.name}`, { table, name: chain.name, chain });
  }

  private removeChain(table: Table, name: string): void {
    this.chains[table].delete(name);
    this.pending.chains.set(`${table} ${name}`, { table, name, chain: undefined });
  }

  private takeChange(): FirewallChange {
    const { touched, created, destroyed, chains } = this.pending;
    const members: FirewallChange['members'] = [];
    for (const [name, before] of touched) {
      if (created.has(name)) continue;
      const now = this.sets.get(name)!.members;
      const add: string[] = [];
      const remove: string[] = [];
      for (const [member, wasThere] of before) {
        if (now.has(member) && !wasThere) add.push(member);
        if (!now.has(member) && wasThere) remove.push(member);
      }
      if (add.length + remove.length > 0) members.push({ name, add: sortMembers(add), remove: sortMembers(remove) });
    }
    const changed = [...chains.values()].sort((a, b) => compareText(a.table, b.table) || compareText(a.name, b.name));
    return {
      createdSets: [...created].sort().map((name) => ({ name, type: this.sets.get(name)!.type, members: sortMembers([...this.sets.get(name)!.members.keys()]) })),
      members: byName(members),
      chains: changed.flatMap(({ table, chain }) => (chain === undefined ? [] : [{ table, chain }])),
      removedChains: changed.flatMap(({ table, name, chain }) => (chain === undefined ? [{ table, name }] : [])),
      destroyedSets: [...destroyed].sort(),
    };
  }
}

function newPending(): Pending {
  return { touched: new Map(), created: new Set(), destroyed: new Set(), chains: new Map() };
}

/** True when both maps hold the same record objects under the same keys. */
function sameRecords<T>(mine: ReadonlyMap<string, T>, theirs: ReadonlyMap<string, T>): boolean {
  if (mine.size !== theirs.size) return false;
  for (const [key, value] of theirs) if (mine.get(key) !== value) return false;
  return true;
}

/**
 * Keys whose record (as `project` gives it for this family) is new, replaced or gone: one pass of
 * identity compares, a second only when some are gone.
 */
function changedKeys<T>(mine: ReadonlyMap<string, T>, theirs: ReadonlyMap<string, T>, project: (record: T) => T | undefined): string[] {
  const changed: string[] = [];
  let kept = 0;
  // forEach, not for-of: no entry array per record.
  theirs.forEach((record, key) => {
    const value = project(record);
    const before = mine.get(key);
    if (before !== value) changed.push(key);
    if (before !== undefined && value !== undefined) kept++;
  });
  if (kept < mine.size) {
    mine.forEach((_, key) => {
      if (!theirs.has(key)) changed.push(key);
    });
  }
  return changed;
}

/** Rules of unchanged policies are the same objects (PolicyChainCache); the few others are rebuilt, so compared by value. */
function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  return a === b || (a.length === b.length && a.every((rule, i) => sameValue(rule, b[i])));
}

/** Deep equality of plain data (objects, arrays, primitives), as rules are. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => sameValue(item, b[i]));
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((key) => sameValue(x[key], y[key]));
}

function setOrDelete<T>(map: Map<string, T>, key: string, value: T | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}
