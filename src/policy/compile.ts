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
import { DNAT_CHAIN, FORWARD_CHAIN, INPUT_CHAIN, POSTROUTING_CHAIN } from '../dataplane/names';
import type { Chain, FirewallState, IpSet } from '../dataplane/dataplane';
import { PolicyError } from '../errors';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../model';
import { isIpv6, parseCidr, parseIp } from '../net/ipv4';
import {
  EGRESS_GOVERNED_SET,
  FROM_WORKLOAD_CHAIN,
  HOST_IFNAME_PREFIX,
  INGRESS_GOVERNED_SET,
  LOCAL_SET,
  POOLS_SET,
  PROTECTED_ADDRESSES_SET,
  PROTECTED_SET,
  TO_WORKLOAD_CHAIN,
  netSetName,
  policyChainName,
  selectorSetName,
  targetSetName,
} from './names';
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
const ACCEPT_MARK = '0x1000000';

/** iptables' multiport match takes at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

const ALL_SLUICE_IFACES = `${HOST_IFNAME_PREFIX}+`;

export type Direction = 'ingress' | 'egress';

export interface CompiledRule {
  action: 'allow' | 'deny';
  protocol?: string;
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

/** A local endpoint whose policy is known: its labels and its network are. */
interface KnownEndpoint {
  endpoint: EndpointRecord;
  network: NetworkRecord;
  labels: Labels;
}

/** Computes every ipset, filter chain and nat chain Sluice wants on `input.node`. */
export function compileFirewall(input: CompileInput): FirewallState {
  const networks = new Map(input.networks.map((n) => [n.key, n]));
  const policies = compilePolicies(input.policies);
  const sets = new IpSetBook(input.endpoints);
  sets.add({ name: POOLS_SET, type: 'hash:net', members: input.networks.map((n) => n.subnet) });

  const local = input.endpoints.filter((e) => e.node === input.node).sort((a, b) => compareText(a.hostIfname, b.hostIfname));
  // No packet may pass under the wrong policy: an endpoint without labels or network is left out, so gets nothing.
  const known = local.flatMap((endpoint): KnownEndpoint[] => {
    const network = networks.get(endpoint.network);
    return endpoint.labels !== null && network !== undefined ? [{ endpoint, network, labels: endpoint.labels }] : [];
  });
  sets.add({ name: LOCAL_SET, type: 'hash:net,iface', members: known.map(({ endpoint: e }) => `${e.address},${e.hostIfname}`) });

  const protection = input.protection ?? NO_PROTECTION;
  sets.add({
    name: PROTECTED_SET,
    type: 'hash:ip,port',
    members: protection.destinations.flatMap((d) => (d.port === undefined ? [] : [`${d.address},tcp:${d.port}`])),
  });
  sets.add({ name: PROTECTED_ADDRESSES_SET, type: 'hash:ip', members: protection.destinations.flatMap((d) => (d.port === undefined ? [d.address] : [])) });

  const sameNetwork = [...input.networks].sort((a, b) => compareText(a.key, b.key)).map((n) => ({ key: n.key, set: sets.networkSet(n) }));
  const internal = internalSet(input.networks, sets);
  const filter = [
    forwardChain(internal),
    inputChain(protection.hostPorts, input.dnsAddress),
    workloadChain('egress', policies, known, sets, [rule('sluice: default allow egress', '-j RETURN')]),
    workloadChain('ingress', policies, known, sets, defaultIngress(sameNetwork)),
    ...(['ingress', 'egress'] as const).flatMap((direction) =>
      policies.filter((p) => p[direction] !== undefined).map((p) => policyChain(p, direction, sets)),
    ),
  ];
  const nat: Chain[] = [
    { name: DNAT_CHAIN, rules: local.flatMap(dnatRules) },
    {
      name: POSTROUTING_CHAIN,
      rules: [
        ...(internal === undefined ? [] : [rule('sluice: internal networks have no way out', `-m set --match-set ${internal} src -j RETURN`)]),
        rule('sluice: masquerade to outside', `-m set --match-set ${POOLS_SET} src -m set ! --match-set ${POOLS_SET} dst -j MASQUERADE`),
      ],
    },
  ];
  return { ipsets: sets.sorted(), filter: byName(filter), nat: byName(nat) };
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
  const selector = (policy: Policy, text: string): Selector => {
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
  const compileRule = (policy: Policy, r: IngressRule | EgressRule, peer: string | undefined, peerNets: string[] | undefined): CompiledRule => ({
    action: r.action,
    protocol: r.protocol,
    peer: peer === undefined ? undefined : selector(policy, peer),
    peerNets,
    ports: r.ports,
  });
  return [...policies]
    .sort((a, b) => a.order - b.order || compareText(a.name, b.name))
    .map((p) => ({
      name: p.name,
      network: p.network,
      selector: selector(p, p.selector),
      ingress: p.ingress?.map((r) => compileRule(p, r, r.from, r.fromNets)),
      egress: p.egress?.map((r) => compileRule(p, r, r.to, r.toNets)),
    }));
}

export function selects(policy: CompiledPolicy, network: NetworkRecord, labels: Labels): boolean {
  return (policy.network === undefined || policy.network === network.name) && matches(policy.selector, labels);
}

function policyChain(policy: CompiledPolicy, direction: Direction, sets: IpSetBook): Chain {
  const peerSide = direction === 'ingress' ? 'src' : 'dst';
  const rules = (policy[direction] ?? []).flatMap((r, i) => {
    const text = `policy ${policy.name} ${direction}[${i}]`;
    const match: string[] = [];
    if (r.protocol !== undefined) match.push(`-p ${r.protocol}`);
    if (r.peer !== undefined) match.push(`-m set --match-set ${sets.selectorSet(r.peer)} ${peerSide}`);
    const netSet = r.peerNets === undefined ? undefined : sets.netSet(r.peerNets);
    if (netSet !== undefined) match.push(`-m set --match-set ${netSet} ${peerSide}`);
    // More ports than one multiport match takes: one rule per chunk, same action.
    const variants = r.ports === undefined ? [match] : multiportChunks(r.ports).map((list) => [...match, `-m multiport --dports ${list}`]);
    return variants.flatMap((parts) =>
      r.action === 'deny'
        ? [rule(text, [...parts, '-j DROP'].join(' '))]
        : [
            rule(text, [...parts, `-j MARK --set-xmark ${ACCEPT_MARK}/${ACCEPT_MARK}`].join(' ')),
            rule(`${text} allowed`, `-m mark --mark ${ACCEPT_MARK}/${ACCEPT_MARK} -j RETURN`),
          ],
    );
  });
  return { name: policyChainName(direction, policy.name), rules };
}

/** Port lists of at most MULTIPORT_SLOTS slots each, ranges written a:b. */
function multiportChunks(ports: readonly PortSpec[]): string[] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let slots = 0;
  for (const port of ports) {
    const [text, cost] = typeof port === 'number' ? [String(port), 1] : [port.replace('-', ':'), 2];
    if (slots + cost > MULTIPORT_SLOTS) {
      chunks.push(current);
      current = [];
      slots = 0;
    }
    current.push(text);
    slots += cost;
  }
  chunks.push(current);
  return chunks.map((chunk) => chunk.join(','));
}

// ---- workload chains ----

/**
 * SLUICE-FROM-WL (egress, matching the source) or SLUICE-TO-WL (ingress,
 * matching the destination): the policies of the direction in order, each
 * gated by the set of local endpoints it selects, then default-deny for every
 * endpoint some of them selected, then `defaults` for the rest.
 */
function workloadChain(direction: Direction, policies: CompiledPolicy[], known: KnownEndpoint[], sets: IpSetBook, defaults: string[]): Chain {
  const side = direction === 'egress' ? 'src' : 'dst';
  const rules = [
    // Sets of addresses alone would let a container use its neighbour's address; the veth pins it.
    rule('sluice: not a local endpoint with known policy (anti-spoofing, fail closed)', `-m set ! --match-set ${LOCAL_SET} ${side},${side} -j DROP`),
  ];
  const governing = policies.filter((p) => p[direction] !== undefined);
  if (governing.length > 0) {
    const targets = governing.map((policy) => ({ policy, set: sets.targetSet(policy, known.filter((k) => selects(policy, k.network, k.labels))) }));
    const governedSet = direction === 'egress' ? EGRESS_GOVERNED_SET : INGRESS_GOVERNED_SET;
    sets.add({ name: governedSet, type: 'hash:ip', members: targets.flatMap((t) => t.set.members) });
    rules.push(
      rule('sluice: clear accept mark', `-j MARK --set-xmark 0x0/${ACCEPT_MARK}`),
      ...targets.flatMap(({ policy: p, set }) => [
        rule(`policy ${p.name}`, `-m set --match-set ${set.name} ${side} -j ${policyChainName(direction, p.name)}`),
        rule(`policy ${p.name} allowed`, `-m mark --mark ${ACCEPT_MARK}/${ACCEPT_MARK} -j RETURN`),
      ]),
      rule(`sluice: default deny ${direction} (selected by policy)`, `-m set --match-set ${governedSet} ${side} -j DROP`),
    );
  }
  return { name: direction === 'egress' ? FROM_WORKLOAD_CHAIN : TO_WORKLOAD_CHAIN, rules: [...rules, ...defaults] };
}

/**
 * Ingress of an endpoint no policy selects: own network in, other sluice
 * networks out, and anything else (the outside world, the host, published
 * ports, since DNAT keeps the outside source) in.
 */
function defaultIngress(networks: { key: string; set: string }[]): string[] {
  return [
    ...networks.map((n) => rule(`sluice: default same network ${n.key}`, `-m set --match-set ${n.set} dst -m set --match-set ${n.set} src -j RETURN`)),
    rule('sluice: default deny other sluice networks', `-m set --match-set ${POOLS_SET} src -j DROP`),
    rule('sluice: default allow non-sluice sources', '-j RETURN'),
  ];
}

// ---- top-level chains ----

/** The ipset of the `--internal` networks' subnets; undefined (no set, no rules) when there are none. */
function internalSet(networks: readonly NetworkRecord[], sets: IpSetBook): string | undefined {
  const internal = networks.filter((n) => n.settings?.internal === true).map((n) => n.subnet);
  return internal.length === 0 ? undefined : sets.netSet(internal);
}

function forwardChain(internal: string | undefined): Chain {
  // --internal: nothing between its containers and anything outside the sluice networks, either way, replies included.
  const isolation = internal === undefined ? [] : [
    rule('sluice: internal network, no way out', `-m set --match-set ${internal} src -m set ! --match-set ${POOLS_SET} dst -j DROP`),
    rule('sluice: internal network, no way in', `-m set --match-set ${internal} dst -m set ! --match-set ${POOLS_SET} src -j DROP`),
  ];
  return {
    name: FORWARD_CHAIN,
    rules: [
      // Scoped to sluice veths, so other forwarded traffic is left to the host's own rules.
      rule('sluice: not sluice traffic', `! -i ${ALL_SLUICE_IFACES} ! -o ${ALL_SLUICE_IFACES} -j RETURN`),
      ...isolation,
      rule('sluice: established', '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'),
      rule('sluice: invalid', '-m conntrack --ctstate INVALID -j DROP'),
      ...protectedDestinations(`-i ${ALL_SLUICE_IFACES} `),
      rule('sluice: from workload', `-i ${ALL_SLUICE_IFACES} -j ${FROM_WORKLOAD_CHAIN}`),
      rule('sluice: to workload', `-o ${ALL_SLUICE_IFACES} -j ${TO_WORKLOAD_CHAIN}`),
      rule('sluice: allowed', '-j ACCEPT'),
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
      rule('sluice: not from a workload', `! -i ${ALL_SLUICE_IFACES} -j RETURN`),
      rule('sluice: established (left to the host rules)', '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN'),
      ...protectedDestinations(''),
      ...(hostPorts.length === 0 ? [] : multiportChunks(hostPorts).map((ports) => rule('sluice: protected host port', `-p tcp -m multiport --dports ${ports} -j DROP`))),
      ...(dnsAddress === undefined
        ? []
        : (['udp', 'tcp'] as const).map((proto) => rule('sluice: dns to the sluice resolver', `-p ${proto} -d ${dnsAddress}/32 --dport 53 -j ACCEPT`))),
      rule('sluice: from workload', `-j ${FROM_WORKLOAD_CHAIN}`),
    ],
  };
}

/** New connections to the control plane, dropped whatever the policies say; `match` narrows to traffic from workloads. */
function protectedDestinations(match: string): string[] {
  return [
    rule('sluice: protected destination', `${match}-m set --match-set ${PROTECTED_SET} dst,dst -j DROP`),
    rule('sluice: protected address', `${match}-m set --match-set ${PROTECTED_ADDRESSES_SET} dst -j DROP`),
  ];
}

/**
 * `docker run -p` for tcp and udp (sctp and IPv6 host addresses are not
 * supported here). A host port range ("-p 8000-8010:80") forwards every port
 * of the range to the one container port. The dataplane jumps here only for
 * the host's own addresses (`-m addrtype --dst-type LOCAL`), so traffic
 * passing through is never redirected.
 */
function dnatRules(endpoint: EndpointRecord): string[] {
  return [...endpoint.ports]
    .filter((m) => (m.proto === 'tcp' || m.proto === 'udp') && !isIpv6(m.hostIp ?? ''))
    .sort(comparePortMappings)
    .map((m) => {
      const destination = m.hostIp === undefined || m.hostIp === '0.0.0.0' ? '' : ` -d ${m.hostIp}/32`;
      const hostPorts = m.hostPortEnd > m.hostPort ? `${m.hostPort}:${m.hostPortEnd}` : `${m.hostPort}`;
      return rule(
        `sluice: publish ${endpoint.id}`,
        `-p ${m.proto}${destination} --dport ${hostPorts} -j DNAT --to-destination ${endpoint.address}:${m.containerPort}`,
      );
    });
}

function comparePortMappings(a: PortMapping, b: PortMapping): number {
  return compareText(a.proto, b.proto) || a.hostPort - b.hostPort || compareText(a.hostIp ?? '', b.hostIp ?? '') || a.containerPort - b.containerPort;
}

// ---- ipsets ----

/** The ipsets the chains refer to, each made once, by name. */
class IpSetBook {
  private readonly sets = new Map<string, IpSet>();

  constructor(private readonly endpoints: readonly EndpointRecord[]) {}

  add(set: IpSet): string {
    if (!this.sets.has(set.name)) this.sets.set(set.name, { ...set, members: sortAddresses(set.members) });
    return set.name;
  }

  /** Addresses of every endpoint, on any host, whose labels are known and match. */
  selectorSet(selector: Selector): string {
    const name = selectorSetName(selector.toString());
    if (this.sets.has(name)) return name;
    const members = this.endpoints.filter((e) => e.labels !== null && matches(selector, e.labels)).map((e) => e.address);
    return this.add({ name, type: 'hash:ip', members });
  }

  /** The local endpoints a policy applies to: `selected`, already filtered by its selector and network. */
  targetSet(policy: CompiledPolicy, selected: KnownEndpoint[]): { name: string; members: string[] } {
    const members = selected.map((k) => k.endpoint.address);
    return { name: this.add({ name: targetSetName(policy.selector.toString(), policy.network), type: 'hash:ip', members }), members };
  }

  /** The set of one network's subnet: the same set a rule with that one CIDR uses. */
  networkSet(network: NetworkRecord): string {
    return this.add({ name: netSetName([network.subnet]), type: 'hash:net', members: [network.subnet] });
  }

  /** Undefined when a /0 is among the nets: that matches every address, and hash:net cannot hold a /0. */
  netSet(cidrs: readonly string[]): string | undefined {
    if (cidrs.some((c) => parseCidr(c)?.prefix === 0)) return undefined;
    return this.add({ name: netSetName(cidrs), type: 'hash:net', members: [...cidrs] });
  }

  sorted(): IpSet[] {
    return byName([...this.sets.values()]);
  }
}

// ---- helpers ----

function rule(comment: string, spec: string): string {
  // Comments are built from validated names, endpoint IDs and fixed text: no quotes inside.
  return `-m comment --comment "${comment}" ${spec}`;
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => compareText(a.name, b.name));
}

/** Numeric order ("10.0.0.2" before "10.0.0.10"; an interface after a comma breaks ties), duplicates dropped. */
function sortAddresses(members: readonly string[]): string[] {
  const key = (member: string): number => {
    const [ip, prefix] = (member.split(',')[0] ?? '').split('/');
    return (parseIp(ip ?? '') ?? 0) * 64 + Number(prefix ?? 32);
  };
  return [...new Set(members)].sort((a, b) => key(a) - key(b) || compareText(a, b));
}
