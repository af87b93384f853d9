/**
 * The policy compiler: the whole cluster's networks, endpoints and policies in,
 * this host's desired ipsets and iptables chains out. Pure and deterministic
 * (everything sorted), so equal inputs give byte-equal rules and the
 * dataplane rewrites only what changed.
 *
 * No chain names an endpoint: which endpoints a rule applies to is ipset
 * membership. So a container starting, stopping or having its labels learned
 * changes only sets (one `ipset restore`, ~3 ms); chains change only with
 * policies, networks and port mappings (an `iptables-restore`, ~15-20 ms).
 *
 * Filter table:
 *
 *   SLUICE-FORWARD (from FORWARD)
 *                  not from or to a sluice veth → RETURN (untouched)
 *                  RELATED,ESTABLISHED → ACCEPT; INVALID → DROP
 *                  -i slv+ to a protected destination → DROP (before any policy)
 *                  -i slv+ → SLUICE-FROM-WL (egress of the sender)
 *                  -o slv+ → SLUICE-TO-WL   (ingress of the receiver)
 *                  → ACCEPT (both sides that apply on this host let it through)
 *   SLUICE-INPUT   (from INPUT) from a sluice veth, not a reply: to a protected
 *                  destination or host port → DROP; DNS (udp and tcp 53) to
 *                  the sluice resolver's address → ACCEPT, whatever the policy;
 *                  then → SLUICE-FROM-WL, so the host's own services are
 *                  reached only as egress allows
 *
 *   SLUICE-FROM-WL source,in-veth not in sluice-local → DROP (spoofed, or fail closed)
 *                  for each policy with egress rules, in order:
 *                    source in its target set → SLUICE-po-<policy>; mark set → RETURN
 *                  source in sluice-egress-governed → DROP (default deny)
 *                  → RETURN (default allow)
 *   SLUICE-TO-WL   the same with destination,out-veth, ingress policies and
 *                  sluice-ingress-governed; then the default: same network
 *                  RETURN, other sluice networks DROP, anything else RETURN
 *
 * A policy chain (`SLUICE-pi-`/`-po-`) DROPs on a deny rule, and on an allow
 * rule sets ACCEPT_MARK and returns, as in Felix; the caller returns as soon as
 * the mark is set, so the first matching rule across policies (in policy
 * order) decides. Each workload chain clears the mark first: a packet between
 * two local containers carries the mark its sender's egress set into the
 * receiver's ingress. Traffic from a remote container meets only the
 * receiver's side here (its sender's host applied the egress side).
 *
 * Protected destinations (the control plane: the store, the Docker API, see
 * protect.ts) are sluice-protected (ADDRESS,tcp:PORT) and sluice-protected-addrs
 * (whole addresses); replies still pass, so a host may open connections to
 * containers.
 *
 * Selectors and CIDR lists become ipsets, so the per-packet cost does not grow
 * with the number of endpoints in the cluster.
 */
import { PolicyError } from '../errors';
import {
  DNAT_CHAIN,
  EGRESS_GOVERNED_SET,
  FORWARD_CHAIN,
  FROM_WORKLOAD_CHAIN,
  HOST_IFNAME_PREFIX,
  INGRESS_GOVERNED_SET,
  INPUT_CHAIN,
  LOCAL_SET,
  POOLS_SET,
  POSTROUTING_CHAIN,
  PROTECTED_ADDRESSES_SET,
  PROTECTED_SET,
  TO_WORKLOAD_CHAIN,
  netSetName,
  policyChainName,
  selectorSetName,
  targetSetName,
} from '../firewall/names';
import type { Action, Match, PortRange, Rule } from '../firewall/rule';
import { byName, compareText, sortMembers, type Chain, type FirewallState, type IpSet } from '../firewall/state';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../model';
import { isIpv6, parseCidr } from '../net/ipv4';
import type { EgressRule, IngressRule, Policy, PortSpec } from '../policy-document/policy';
import { NO_PROTECTION, type Protection } from './protect';
import { matches, parseSelector, type Selector } from '../policy-document/selector';

export interface CompileInput {
  /** This host; its endpoints are the ones with `endpoint.node === node`. */
  node: string;
  /** Every sluice network in the cluster. */
  networks: readonly NetworkRecord[];
  /** Every endpoint in the cluster: remote ones feed the selector ipsets. */
  endpoints: readonly EndpointRecord[];
  policies: readonly Policy[];
  /** The control plane containers never reach, whatever the policies say; default nothing. */
  protection?: Protection;
  /** Where this host's resolver of container names serves: DNS to it is always allowed. */
  dnsAddress?: string;
}

/**
 * Packet mark bit an allow rule sets for the workload chain to see. Bit 24:
 * clear of kube-proxy (0x4000, 0x8000) and Docker, which use low bits.
 */
const ACCEPT_MARK = 0x1000000;

/** iptables' multiport match takes at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

const ALL_SLUICE_IFACES = `${HOST_IFNAME_PREFIX}+`;

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

/** Computes every ipset, filter chain and nat chain Sluice wants on `input.node`. */
export function compileFirewall(input: CompileInput): FirewallState {
  const networks = new Map(input.networks.map((n) => [n.key, n]));
  const skeleton = firewallSkeleton({ networks: input.networks, policies: compilePolicies(input.policies), protection: input.protection, dnsAddress: input.dnsAddress });
  const local = input.endpoints.filter((e) => e.node === input.node).sort((a, b) => compareText(a.hostIfname, b.hostIfname));
  const known = local.filter((e) => knownNetwork(e, networks) !== undefined);
  const sets = new Map(skeleton.fixedSets.map((set) => [set.name, set.members]));
  sets.set(LOCAL_SET, known.map(localMember));
  for (const [name, selector] of skeleton.selectorSets) {
    sets.set(name, input.endpoints.filter((e) => e.labels !== null && matches(selector, e.labels)).map((e) => e.address));
  }
  for (const [name, policy] of skeleton.targetSets) {
    sets.set(name, known.filter((e) => selects(policy, knownNetwork(e, networks)!, e.labels!)).map((e) => e.address));
  }
  for (const { name, targets } of skeleton.governed) sets.set(name, targets.flatMap((target) => sets.get(target)!));
  const ipsets = [...sets].map(([name, members]): IpSet => ({ name, type: skeleton.types.get(name)!, members: sortMembers(members) }));
  return {
    ipsets: byName(ipsets),
    filter: skeleton.filter,
    nat: byName([{ name: DNAT_CHAIN, rules: local.flatMap(dnatRules) }, skeleton.postrouting]),
  };
}

/**
 * Everything that follows from the networks, policies and protection alone:
 * the chains but SLUICE-DNAT, the sets whose members are fixed by them, and
 * which sets endpoints fill. A container starting or stopping changes none of it.
 */
export interface Skeleton {
  /** Sorted by name. */
  filter: Chain[];
  postrouting: Chain;
  /** Pools, subnets, CIDR lists and the protected destinations, members sorted. */
  fixedSets: IpSet[];
  /** Filled with every endpoint of the cluster whose labels the selector matches. */
  selectorSets: Map<string, Selector>;
  /** Filled with the local endpoints of known policy the policy selects. */
  targetSets: Map<string, CompiledPolicy>;
  /** Per direction that policies govern: its set, the union of these target sets. */
  governed: { name: string; targets: string[] }[];
  /** Every set's type, LOCAL_SET's included. */
  types: Map<string, IpSet['type']>;
}

export interface Structure {
  networks: readonly NetworkRecord[];
  /** In evaluation order (compilePolicies). */
  policies: readonly CompiledPolicy[];
  protection?: Protection;
  dnsAddress?: string;
}

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

export function firewallSkeleton(structure: Structure, cache = new PolicyChainCache()): Skeleton {
  const book = new SetBook();
  book.fixed(POOLS_SET, 'hash:net', structure.networks.map((n) => n.subnet));
  book.types.set(LOCAL_SET, 'hash:net,iface');
  const protection = structure.protection ?? NO_PROTECTION;
  book.fixed(PROTECTED_SET, 'hash:ip,port', protection.destinations.flatMap((d) => (d.port === undefined ? [] : [`${d.address},tcp:${d.port}`])));
  book.fixed(PROTECTED_ADDRESSES_SET, 'hash:ip', protection.destinations.flatMap((d) => (d.port === undefined ? [d.address] : [])));

  const sameNetwork = [...structure.networks].sort((a, b) => compareText(a.key, b.key)).map((n) => ({ key: n.key, set: book.netSet([n.subnet])! }));
  const internal = internalSet(structure.networks, book);
  const policies = structure.policies;
  const governed: Skeleton['governed'] = [];
  const workload = (direction: Direction, defaults: Rule[]): Chain => {
    const chain = workloadChain(direction, policies, book, defaults, cache);
    if (chain.governed !== undefined) governed.push(chain.governed);
    return { name: chain.name, rules: chain.rules };
  };
  const filter = [
    forwardChain(internal),
    inputChain(protection.hostPorts, structure.dnsAddress),
    workload('egress', [rule('sluice: default allow egress', [], { kind: 'RETURN' })]),
    workload('ingress', defaultIngress(sameNetwork)),
    ...(['ingress', 'egress'] as const).flatMap((direction) => policies.filter((p) => p[direction] !== undefined).map((p) => cache.chain(p, direction, book))),
  ];
  const postrouting: Chain = {
    name: POSTROUTING_CHAIN,
    rules: [
      ...(internal === undefined ? [] : [rule('sluice: internal networks have no way out', [setMatch(internal, 'src')], { kind: 'RETURN' })]),
      rule('sluice: masquerade to outside', [setMatch(POOLS_SET, 'src'), { ...setMatch(POOLS_SET, 'dst'), negated: true }], { kind: 'MASQUERADE' }),
    ],
  };
  return {
    filter: byName(filter),
    postrouting,
    fixedSets: byName([...book.fixedSets.values()]),
    selectorSets: book.selectorSets,
    targetSets: book.targetSets,
    governed,
    types: book.types,
  };
}

/** The endpoint's network when its policy is known (labels and network known); else it fails closed and gets nothing. */
export function knownNetwork(endpoint: EndpointRecord, networks: ReadonlyMap<string, NetworkRecord>): NetworkRecord | undefined {
  return endpoint.labels === null ? undefined : networks.get(endpoint.network);
}

/** A local endpoint's entry in LOCAL_SET: its address on its veth. */
export function localMember(endpoint: EndpointRecord): string {
  return `${endpoint.address},${endpoint.hostIfname}`;
}

// ---- policies ----

/** Names of the policies that select an endpoint of `network` with `labels`, in evaluation order (for `sluice status`). */
export function policiesSelecting(policies: readonly Policy[], network: NetworkRecord, labels: Labels): string[] {
  return compilePolicies(policies)
    .filter((p) => selects(p, network, labels))
    .map((p) => p.name);
}

/** Parses each policy's selectors once, and sorts the policies into evaluation order. */
export function compilePolicies(policies: readonly Policy[]): CompiledPolicy[] {
  const cache = new Map<string, Selector>();
  return sortPolicies(policies).map((p) => compilePolicy(p, cache));
}

/** Evaluation order: by `order`, then by name. */
export function sortPolicies(policies: readonly Policy[]): Policy[] {
  return [...policies].sort((a, b) => a.order - b.order || compareText(a.name, b.name));
}

/** One policy with its selectors parsed; `cache` shares parses of equal selector text. */
export function compilePolicy(policy: Policy, cache = new Map<string, Selector>()): CompiledPolicy {
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
  const compileRule = (r: IngressRule | EgressRule, peer: string | undefined, peerNets: string[] | undefined): CompiledRule => ({
    action: r.action,
    protocol: r.protocol,
    peer: peer === undefined ? undefined : selector(peer),
    peerNets,
    ports: r.ports,
  });
  return {
    name: policy.name,
    network: policy.network,
    selector: selector(policy.selector),
    ingress: policy.ingress?.map((r) => compileRule(r, r.from, r.fromNets)),
    egress: policy.egress?.map((r) => compileRule(r, r.to, r.toNets)),
  };
}

export function selects(policy: CompiledPolicy, network: NetworkRecord, labels: Labels): boolean {
  return (policy.network === undefined || policy.network === network.name) && matches(policy.selector, labels);
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
function portRange(port: PortSpec): PortRange {
  if (typeof port === 'number') return { first: port, last: port };
  const [first, last] = port.split('-').map(Number);
  return { first: first!, last: last! };
}

/** Port lists of at most MULTIPORT_SLOTS slots each. */
function multiportChunks(ports: readonly PortRange[]): PortRange[][] {
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

// ---- workload chains ----

/**
 * SLUICE-FROM-WL (egress, matching the source) or SLUICE-TO-WL (ingress,
 * matching the destination): the policies of the direction in order, each
 * gated by the set of local endpoints it selects, then default-deny for every
 * endpoint some of them selected, then `defaults` for the rest.
 */
function workloadChain(
  direction: Direction,
  policies: readonly CompiledPolicy[],
  sets: SetBook,
  defaults: Rule[],
  cache: PolicyChainCache,
): Chain & { governed?: Skeleton['governed'][number] } {
  const side = direction === 'egress' ? 'src' : 'dst';
  const name = direction === 'egress' ? FROM_WORKLOAD_CHAIN : TO_WORKLOAD_CHAIN;
  const rules = [
    // Sets of addresses alone would let a container use its neighbour's address; the veth pins it.
    rule('sluice: not a local endpoint with known policy (anti-spoofing, fail closed)', [{ ...setMatch(LOCAL_SET, side === 'src' ? 'src,src' : 'dst,dst'), negated: true }], { kind: 'DROP' }),
  ];
  const governing = policies.filter((p) => p[direction] !== undefined);
  if (governing.length === 0) return { name, rules: [...rules, ...defaults] };
  const gates = governing.map((policy) => cache.gate(policy, direction, sets));
  const governedSet = direction === 'egress' ? EGRESS_GOVERNED_SET : INGRESS_GOVERNED_SET;
  sets.types.set(governedSet, 'hash:ip');
  rules.push(
    rule('sluice: clear accept mark', [], { kind: 'MARK', value: 0, mask: ACCEPT_MARK }),
    ...gates.flatMap((gate) => gate.rules),
    rule(`sluice: default deny ${direction} (selected by policy)`, [setMatch(governedSet, side)], { kind: 'DROP' }),
  );
  return { name, rules: [...rules, ...defaults], governed: { name: governedSet, targets: gates.map((gate) => gate.targetSet) } };
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

/**
 * Ingress of an endpoint no policy selects: own network in, other sluice
 * networks out, and anything else (the outside world, the host, published
 * ports, since DNAT keeps the outside source) in.
 */
function defaultIngress(networks: { key: string; set: string }[]): Rule[] {
  return [
    ...networks.map((n) => rule(`sluice: default same network ${n.key}`, [setMatch(n.set, 'dst'), setMatch(n.set, 'src')], { kind: 'RETURN' })),
    rule('sluice: default deny other sluice networks', [setMatch(POOLS_SET, 'src')], { kind: 'DROP' }),
    rule('sluice: default allow non-sluice sources', [], { kind: 'RETURN' }),
  ];
}

// ---- top-level chains ----

/** The ipset of the `--internal` networks' subnets; undefined (no set, no rules) when there are none. */
function internalSet(networks: readonly NetworkRecord[], sets: SetBook): string | undefined {
  const internal = networks.filter((n) => n.settings?.internal === true).map((n) => n.subnet);
  return internal.length === 0 ? undefined : sets.netSet(internal);
}

const fromWorkload: Extract<Match, { kind: 'in-interface' }> = { kind: 'in-interface', name: ALL_SLUICE_IFACES };

function forwardChain(internal: string | undefined): Chain {
  // --internal: nothing between its containers and anything outside the sluice networks, either way, replies included.
  const isolation = internal === undefined ? [] : [
    rule('sluice: internal network, no way out', [setMatch(internal, 'src'), { ...setMatch(POOLS_SET, 'dst'), negated: true }], { kind: 'DROP' }),
    rule('sluice: internal network, no way in', [setMatch(internal, 'dst'), { ...setMatch(POOLS_SET, 'src'), negated: true }], { kind: 'DROP' }),
  ];
  return {
    name: FORWARD_CHAIN,
    rules: [
      // Scoped to sluice veths, so other forwarded traffic is left to the host's own rules.
      rule('sluice: not sluice traffic', [{ ...fromWorkload, negated: true }, { kind: 'out-interface', name: ALL_SLUICE_IFACES, negated: true }], { kind: 'RETURN' }),
      ...isolation,
      rule('sluice: established', [{ kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] }], { kind: 'ACCEPT' }),
      rule('sluice: invalid', [{ kind: 'conntrack', states: ['INVALID'] }], { kind: 'DROP' }),
      ...protectedDestinations([fromWorkload]),
      rule('sluice: from workload', [fromWorkload], { kind: 'jump', chain: FROM_WORKLOAD_CHAIN }),
      rule('sluice: to workload', [{ kind: 'out-interface', name: ALL_SLUICE_IFACES }], { kind: 'jump', chain: TO_WORKLOAD_CHAIN }),
      rule('sluice: allowed', [], { kind: 'ACCEPT' }),
    ],
  };
}

/**
 * Containers reaching the host itself pass their egress side too. What is
 * allowed RETURNs, not ACCEPTs, so the host's own INPUT rules still decide,
 * replies included. The control plane on this host is closed first. DNS to
 * the resolver is accepted before any policy: a container that may talk to
 * nothing else still resolves names (and only port 53 of that address opens).
 */
function inputChain(hostPorts: readonly number[], dnsAddress: string | undefined): Chain {
  return {
    name: INPUT_CHAIN,
    rules: [
      rule('sluice: not from a workload', [{ ...fromWorkload, negated: true }], { kind: 'RETURN' }),
      rule('sluice: established (left to the host rules)', [{ kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] }], { kind: 'RETURN' }),
      ...protectedDestinations([]),
      ...(hostPorts.length === 0
        ? []
        : multiportChunks(hostPorts.map(portRange)).map((ports) => rule('sluice: protected host port', [{ kind: 'protocol', protocol: 'tcp' }, { kind: 'multiport', ports }], { kind: 'DROP' }))),
      ...(dnsAddress === undefined
        ? []
        : (['udp', 'tcp'] as const).map((protocol) =>
            rule(
              'sluice: dns to the sluice resolver',
              [{ kind: 'protocol', protocol }, { kind: 'destination', address: dnsAddress }, { kind: 'destination-port', ports: { first: 53, last: 53 } }],
              { kind: 'ACCEPT' },
            ),
          )),
      rule('sluice: from workload', [], { kind: 'jump', chain: FROM_WORKLOAD_CHAIN }),
    ],
  };
}

/** New connections to the control plane, dropped whatever the policies say; `match` narrows to traffic from workloads. */
function protectedDestinations(match: Match[]): Rule[] {
  return [
    rule('sluice: protected destination', [...match, setMatch(PROTECTED_SET, 'dst,dst')], { kind: 'DROP' }),
    rule('sluice: protected address', [...match, setMatch(PROTECTED_ADDRESSES_SET, 'dst')], { kind: 'DROP' }),
  ];
}

/**
 * `docker run -p` for tcp and udp (sctp and IPv6 host addresses are not
 * supported here). A host port range ("-p 8000-8010:80") forwards every port
 * of the range to the one container port. The dataplane jumps here only for
 * the host's own addresses (`-m addrtype --dst-type LOCAL`), so traffic
 * passing through is never redirected.
 */
export function dnatRules(endpoint: EndpointRecord): Rule[] {
  return endpoint.ports
    .filter((m): m is PortMapping & { proto: 'tcp' | 'udp' } => (m.proto === 'tcp' || m.proto === 'udp') && !isIpv6(m.hostIp ?? ''))
    .sort(comparePortMappings)
    .map((m) =>
      rule(
        `sluice: publish ${endpoint.id}`,
        [
          { kind: 'protocol', protocol: m.proto },
          ...(m.hostIp === undefined || m.hostIp === '0.0.0.0' ? [] : [{ kind: 'destination' as const, address: m.hostIp }]),
          { kind: 'destination-port', ports: { first: m.hostPort, last: Math.max(m.hostPort, m.hostPortEnd) } },
        ],
        { kind: 'DNAT', address: endpoint.address, port: m.containerPort },
      ),
    );
}

function comparePortMappings(a: PortMapping, b: PortMapping): number {
  return compareText(a.proto, b.proto) || a.hostPort - b.hostPort || compareText(a.hostIp ?? '', b.hostIp ?? '') || a.containerPort - b.containerPort;
}

// ---- ipsets ----

/** The sets the chains refer to, each named once; endpoints fill the selector and target sets later. */
class SetBook {
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
    if (cidrs.some((c) => parseCidr(c)?.prefix === 0)) return undefined;
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

function rule(comment: string, matches: Match[], action: Action): Rule {
  // Comments are built from validated names, endpoint IDs and fixed text: no quotes inside.
  return { comment, matches, action };
}

function setMatch(set: string, sides: Extract<Match, { kind: 'set' }>['sides']): Extract<Match, { kind: 'set' }> {
  return { kind: 'set', set, sides };
}
