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
 *
 * Here: the input, the skeleton (what follows from networks, policies and
 * protection) and its filling with endpoints. policy-chains.ts builds each
 * policy's chains, host-chains.ts the others; neither imports this file.
 */
import { DNAT_CHAIN, LOCAL_SET, POOLS_SET, POSTROUTING_CHAIN, PROTECTED_ADDRESSES_SET, PROTECTED_SET } from '../firewall/names';
import type { Rule } from '../firewall/rule';
import { byName, compareText, sortMembers, type Chain, type FirewallState, type IpSet } from '../firewall/state';
import type { EndpointRecord, NetworkRecord } from '../model';
import type { Policy } from '../policy-document/policy';
import { matches, type Selector } from '../policy-document/selector';
import { defaultIngress, dnatRules, forwardChain, inputChain, internalSet, workloadChain, type Governed } from './host-chains';
import { PolicyChainCache, SetBook, compilePolicies, rule, selects, setMatch, type CompiledPolicy, type Direction } from './policy-chains';
import { NO_PROTECTION, type Protection } from './protect';
import type { Family } from '../net/ip';
import { endpointIn, networkIn, protectionIn } from './family';

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
  /** Whose firewall: IPv4's (the default) or IPv6's, of the endpoints' IPv6 addresses and the networks' IPv6 pools (family.ts). */
  family?: Family;
  /** NAT66: IPv6 leaving the cluster masqueraded as IPv4 always is; else routed. */
  ipv6Masquerade?: boolean;
}

/** Computes every ipset, filter chain and nat chain Sluice wants on `input.node`, for one address family. */
export function compileFirewall(input: CompileInput): FirewallState {
  const family = input.family ?? 4;
  const inFamily = input.networks.flatMap((n) => networkIn(n, family) ?? []);
  const endpoints = input.endpoints.flatMap((e) => endpointIn(e, family) ?? []);
  const networks = new Map(inFamily.map((n) => [n.key, n]));
  const skeleton = firewallSkeleton({
    networks: inFamily,
    policies: compilePolicies(input.policies, family),
    protection: input.protection && protectionIn(input.protection, family),
    dnsAddress: input.dnsAddress,
    family,
    ipv6Masquerade: input.ipv6Masquerade,
  });
  const local = endpoints.filter((e) => e.node === input.node).sort((a, b) => compareText(a.hostIfname, b.hostIfname));
  const known = local.filter((e) => knownNetwork(e, networks) !== undefined);
  const sets = new Map(skeleton.fixedSets.map((set) => [set.name, set.members]));
  sets.set(LOCAL_SET, known.map(localMember));
  for (const [name, selector] of skeleton.selectorSets) {
    sets.set(name, endpoints.filter((e) => e.labels !== null && matches(selector, e.labels)).map((e) => e.address));
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
  /** Per direction that policies govern. */
  governed: Governed[];
  /** Every set's type, LOCAL_SET's included. */
  types: Map<string, IpSet['type']>;
}

export interface Structure {
  networks: readonly NetworkRecord[];
  /** In evaluation order (compilePolicies). */
  policies: readonly CompiledPolicy[];
  protection?: Protection;
  /** IPv4's only: the resolver serves on an IPv4 address. */
  dnsAddress?: string;
  /** Default 4. IPv6's has neighbour discovery let in, and masquerades only with `ipv6Masquerade`: IPv6 pools are routed. */
  family?: Family;
  ipv6Masquerade?: boolean | undefined;
}

export function firewallSkeleton(structure: Structure, cache = new PolicyChainCache()): Skeleton {
  const book = new SetBook();
  const family = structure.family ?? 4;
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
    inputChain(protection.hostPorts, family === 4 ? structure.dnsAddress : undefined, family),
    workload('egress', [rule('sluice: default allow egress', [], { kind: 'RETURN' })]),
    workload('ingress', defaultIngress(sameNetwork)),
    ...(['ingress', 'egress'] as const).flatMap((direction) => policies.filter((p) => p[direction] !== undefined).map((p) => cache.chain(p, direction, book))),
  ];
  const postrouting: Chain = {
    name: POSTROUTING_CHAIN,
    rules: [
      ...(internal === undefined ? [] : [rule('sluice: internal networks have no way out', [setMatch(internal, 'src')], { kind: 'RETURN' })]),
      ...(family === 4 || structure.ipv6Masquerade === true
        ? [rule('sluice: masquerade to outside', [setMatch(POOLS_SET, 'src'), { ...setMatch(POOLS_SET, 'dst'), negated: true }], { kind: 'MASQUERADE' })]
        : []),
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
