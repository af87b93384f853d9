/**
 * Compiled policies and what each becomes in the filter table: its own chain
 * (SLUICE-pi-/-po-, see compile.ts for how the chains fit together), its gate
 * in a workload chain, and the ipsets they name (SetBook); with the rule
 * builders the host chains share. Imports neither host-chains.ts nor
 * compile.ts.
 */
import { PolicyError } from '../errors';
import { netSetName, policyChainName, selectorSetName, targetSetName } from '../firewall/names';
import type { Action, Match, PortRange, Rule } from '../firewall/rule';
import { compareText, sortMembers, type Chain, type IpSet } from '../firewall/state';
import type { Labels, NetworkRecord } from '../model';
import * as ip from '../net/ip';
import type { EgressRule, IngressRule, Policy, PortSpec } from '../policy-document/policy';
import { matches, parseSelector, type Selector } from '../policy-document/selector';

/**
 * Packet mark bit an allow rule sets for the workload chain to see. Bit 24:
 * clear of kube-proxy (0x4000, 0x8000) and Docker, which use low bits.
 */
export const ACCEPT_MARK = 0x1000000;

/** iptables' multiport match takes at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

export type Direction = 'ingress' | 'egress';

export interface CompiledRule {
  action: 'allow' | 'deny';
  protocol?: 'tcp' | 'udp' | 'icmp';
  /** Selector of the peer endpoint (source for ingress, destination for egress). */
  peer?: Selector;
  peerNets?: string[];
  ports?: PortSpec[];
}

export interface CompiledPolicy {
  name: string;
  network?: string;
  selector: Selector;
  ingress?: CompiledRule[];
  egress?: CompiledRule[];
}

// ---- compiled policies ----

/** Names of the policies that select an endpoint of `network` with `labels`, in evaluation order (for `sluice status`). */
export function policiesSelecting(policies: readonly Policy[], network: NetworkRecord, labels: Labels): string[] {
  return compilePolicies(policies)
    .filter((p) => selects(p, network, labels))
    .map((p) => p.name);
}

/** Parses each policy's selectors once, and sorts the policies into evaluation order. */
export function compilePolicies(policies: readonly Policy[], family: ip.Family = 4): CompiledPolicy[] {
  const cache = new Map<string, Selector>();
  return sortPolicies(policies).map((p) => compilePolicy(p, cache, family));
}

/** Evaluation order: by `order`, then by name. */
export function sortPolicies(policies: readonly Policy[]): Policy[] {
  return [...policies].sort((a, b) => a.order - b.order || compareText(a.name, b.name));
}

/**
 * One policy with its selectors parsed, for the firewall of one address
 * family; `cache` shares parses of equal selector text. A rule whose CIDRs
 * are all of the other family matches no packet of this one: it is left out.
 */
export function compilePolicy(policy: Policy, cache = new Map<string, Selector>(), family: ip.Family = 4): CompiledPolicy {
  const selector = (text: string): Selector => {
    let parsed = cache.get(text);
    if (parsed === undefined) {
      try {
        parsed = parseSelector(text);
      } catch (err) {
        // Stored policies were validated on apply; a bad one means a corrupt or foreign store value.
        throw err instanceof PolicyError ? new PolicyError(`policy ${policy.name}: ${err.message}`) : err;
      }
      cache.set(text, parsed);
    }
    return parsed;
  };
  const compileRule = (r: IngressRule | EgressRule, peer: string | undefined, nets: string[] | undefined): CompiledRule[] => {
    const peerNets = nets?.filter((c) => ip.parseCidr(c)?.family === family);
    if (peerNets?.length === 0) return [];
    return [{ action: r.action, protocol: r.protocol, peer: peer === undefined ? undefined : selector(peer), peerNets, ports: r.ports }];
  };
  return {
    name: policy.name,
    network: policy.network,
    selector: selector(policy.selector),
    ingress: policy.ingress?.flatMap((r) => compileRule(r, r.from, r.fromNets)),
    egress: policy.egress?.flatMap((r) => compileRule(r, r.to, r.toNets)),
  };
}

export function selects(policy: CompiledPolicy, network: NetworkRecord, labels: Labels): boolean {
  return (policy.network === undefined || policy.network === network.name) && matches(policy.selector, labels);
}

// ---- policy chains ----

/**
 * What each policy contributes to the chains (its own chains, its gate in
 * the workload chain), with the sets they name, by compiled policy: a
 * skeleton rebuilt after one policy changed reuses the others' rules, the
 * same objects, so finding what changed is mostly identity compares.
 */
export class PolicyChainCache {
  private readonly chains = new WeakMap<CompiledPolicy, Partial<Record<Direction, Built<Chain>>>>();
  private readonly gates = new WeakMap<CompiledPolicy, Partial<Record<Direction, Built<Gate>>>>();

  /** The policy's chain of `direction` (SLUICE-pi-/-po-). */
  chain(policy: CompiledPolicy, direction: Direction, book: SetBook): Chain {
    return cached(this.chains, policy, direction, book, (sets) => policyChain(policy, direction, sets));
  }

  /** The policy's rules in the workload chain of `direction`. */
  gate(policy: CompiledPolicy, direction: Direction, book: SetBook): Gate {
    return cached(this.gates, policy, direction, book, (sets) => policyGate(policy, direction, sets));
  }
}

/** Something built from one policy, and the sets it names. */
interface Built<T> {
  value: T;
  sets: SetBook;
}

function cached<T>(
  cache: WeakMap<CompiledPolicy, Partial<Record<Direction, Built<T>>>>,
  policy: CompiledPolicy,
  direction: Direction,
  book: SetBook,
  build: (sets: SetBook) => T,
): T {
  let entry = cache.get(policy);
  if (entry === undefined) cache.set(policy, (entry = {}));
  let built = entry[direction];
  if (built === undefined) {
    const sets = new SetBook();
    built = entry[direction] = { value: build(sets), sets };
  }
  book.merge(built.sets);
  return built.value;
}

function policyChain(policy: CompiledPolicy, direction: Direction, sets: SetBook): Chain {
  const peerSide = direction === 'ingress' ? 'src' : 'dst';
  const rules = (policy[direction] ?? []).flatMap((r, i) => {
    const text = `policy ${policy.name} ${direction}[${i}]`;
    const match: Match[] = [];
    if (r.protocol !== undefined) match.push({ kind: 'protocol', protocol: r.protocol });
    if (r.peer !== undefined) match.push(setMatch(sets.selectorSet(r.peer), peerSide));
    const netSet = r.peerNets === undefined ? undefined : sets.netSet(r.peerNets);
    if (netSet !== undefined) match.push(setMatch(netSet, peerSide));
    // More ports than one multiport match takes: one rule per chunk, same action.
    const variants = r.ports === undefined ? [match] : multiportChunks(r.ports.map(portRange)).map((ports): Match[] => [...match, { kind: 'multiport', ports }]);
    return variants.flatMap((parts) =>
      r.action === 'deny'
        ? [rule(text, parts, { kind: 'DROP' })]
        : [rule(text, parts, { kind: 'MARK', value: ACCEPT_MARK, mask: ACCEPT_MARK }), rule(`${text} allowed`, [acceptMarked], { kind: 'RETURN' })],
    );
  });
  return { name: policyChainName(direction, policy.name), rules };
}

const acceptMarked: Match = { kind: 'mark', value: ACCEPT_MARK, mask: ACCEPT_MARK };

/** A policy port (80, "8000-8100") as a range. */
export function portRange(port: PortSpec): PortRange {
  if (typeof port === 'number') return { first: port, last: port };
  const [first, last] = port.split('-').map(Number);
  return { first: first!, last: last! };
}

/** Port lists of at most MULTIPORT_SLOTS slots each. */
export function multiportChunks(ports: readonly PortRange[]): PortRange[][] {
  const chunks: PortRange[][] = [];
  let current: PortRange[] = [];
  let slots = 0;
  for (const port of ports) {
    const cost = port.first === port.last ? 1 : 2;
    if (slots + cost > MULTIPORT_SLOTS) {
      chunks.push(current);
      current = [];
      slots = 0;
    }
    current.push(port);
    slots += cost;
  }
  chunks.push(current);
  return chunks;
}

/** A policy's place in a workload chain: into its chain for the local endpoints it selects, back as soon as it allowed. */
interface Gate {
  targetSet: string;
  rules: Rule[];
}

function policyGate(policy: CompiledPolicy, direction: Direction, sets: SetBook): Gate {
  const targetSet = sets.targetSet(policy);
  return {
    targetSet,
    rules: [
      rule(`policy ${policy.name}`, [setMatch(targetSet, direction === 'egress' ? 'src' : 'dst')], { kind: 'jump', chain: policyChainName(direction, policy.name) }),
      rule(`policy ${policy.name} allowed`, [acceptMarked], { kind: 'RETURN' }),
    ],
  };
}

// ---- ipsets ----

/** The sets the chains refer to, each named once; endpoints fill the selector and target sets later. */
export class SetBook {
  readonly fixedSets = new Map<string, IpSet>();
  readonly selectorSets = new Map<string, Selector>();
  readonly targetSets = new Map<string, CompiledPolicy>();
  readonly types = new Map<string, IpSet['type']>();

  fixed(name: string, type: IpSet['type'], members: readonly string[]): string {
    if (!this.types.has(name)) {
      this.types.set(name, type);
      this.fixedSets.set(name, { name, type, members: sortMembers(members) });
    }
    return name;
  }

  selectorSet(selector: Selector): string {
    const name = selectorSetName(selector.toString());
    this.types.set(name, 'hash:ip');
    this.selectorSets.set(name, selector);
    return name;
  }

  /** Named by content: policies selecting alike share it. */
  targetSet(policy: CompiledPolicy): string {
    const name = targetSetName(policy.selector.toString(), policy.network);
    this.types.set(name, 'hash:ip');
    if (!this.targetSets.has(name)) this.targetSets.set(name, policy);
    return name;
  }

  /** Undefined when a /0 is among the nets: that matches every address, and hash:net cannot hold a /0. */
  netSet(cidrs: readonly string[]): string | undefined {
    if (cidrs.some((c) => ip.parseCidr(c)?.prefix === 0)) return undefined;
    return this.fixed(netSetName(cidrs), 'hash:net', cidrs);
  }

  /** Adds the sets another book named (a cached policy chain's); a name already here stays as it is. */
  merge(other: SetBook): void {
    for (const [name, type] of other.types) {
      // Names stand for their content (hashes of it): one already here is the same set.
      if (this.types.has(name)) continue;
      this.types.set(name, type);
      const fixed = other.fixedSets.get(name);
      if (fixed !== undefined) this.fixedSets.set(name, fixed);
      const selector = other.selectorSets.get(name);
      if (selector !== undefined) this.selectorSets.set(name, selector);
      const policy = other.targetSets.get(name);
      if (policy !== undefined) this.targetSets.set(name, policy);
    }
  }
}

// ---- helpers ----

export function rule(comment: string, matches: Match[], action: Action): Rule {
  // Comments are built from validated names, endpoint IDs and fixed text: no quotes inside.
  return { comment, matches, action };
}

export function setMatch(set: string, sides: Extract<Match, { kind: 'set' }>['sides']): Extract<Match, { kind: 'set' }> {
  return { kind: 'set', set, sides };
}
