/**
 * The policy compiler: the whole cluster's networks, endpoints and policies in,
 * this host's desired ipsets and iptables chains out. Pure and deterministic
 * (everything sorted), so equal inputs give byte-equal rules and the
 * dataplane rewrites only what changed.
 *
 * Filter table, hooked from FORWARD:
 *
 *   SLUICE-FORWARD    not from or to a sluice veth → RETURN (untouched)
 *                     RELATED,ESTABLISHED → ACCEPT; INVALID → DROP
 *                     -i sl+ → SLUICE-FROM-WL ─goto─▶ SLUICE-fw-<if> (egress of the sender)
 *                     -o sl+ → SLUICE-TO-WL   ─goto─▶ SLUICE-tw-<if> (ingress of the receiver)
 *                     → ACCEPT (both sides that apply on this host let it through)
 *
 * A per-endpoint chain DROPs what it refuses and RETURNs what it allows, so
 * traffic between two local containers passes both chains; traffic from a
 * remote container meets only the receiver's chain here (its sender's host
 * applied the egress side). The dispatch chains end in DROP for a sluice veth
 * this host does not know. Policy chains (`SLUICE-pi-`/`-po-`) are shared by
 * every endpoint a policy selects; as in Felix, an allow rule sets ACCEPT_MARK
 * and returns, and the endpoint chain returns as soon as the mark is set, so
 * the first matching rule across policies (in policy order) decides.
 *
 * Selectors and CIDR lists become ipsets, so the per-packet cost does not grow
 * with the number of endpoints in the cluster.
 */
import { DNAT_CHAIN, FORWARD_CHAIN, POSTROUTING_CHAIN } from '../dataplane/names';
import type { Chain, FirewallState, IpSet } from '../dataplane/dataplane';
import { PolicyError } from '../errors';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../model';
import { isIpv6, parseCidr, parseIp } from '../net/ipv4';
import {
  FROM_WORKLOAD_CHAIN,
  HOST_IFNAME_PREFIX,
  POOLS_SET,
  TO_WORKLOAD_CHAIN,
  endpointChainName,
  netSetName,
  policyChainName,
  selectorSetName,
} from './names';
import type { EgressRule, IngressRule, Policy, PortSpec } from './policy';
import { matches, parseSelector, type Selector } from './selector';

export interface CompileInput {
  /** This host; its endpoints are the ones with `endpoint.node === node`. */
  node: string;
  /** Every sluice network in the cluster. */
  networks: readonly NetworkRecord[];
  /** Every endpoint in the cluster: remote ones feed the selector ipsets. */
  endpoints: readonly EndpointRecord[];
  policies: readonly Policy[];
}

/**
 * Packet mark bit an allow rule sets for the endpoint chain to see. Bit 24:
 * clear of kube-proxy (0x4000, 0x8000) and Docker, which use low bits.
 */
const ACCEPT_MARK = '0x1000000';

/** iptables' multiport match takes at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

const ALL_SLUICE_IFACES = `${HOST_IFNAME_PREFIX}+`;

type Direction = 'ingress' | 'egress';

interface CompiledRule {
  action: 'allow' | 'deny';
  protocol?: string;
  /** Selector of the peer endpoint (source for ingress, destination for egress). */
  peer?: Selector;
  peerNets?: string[];
  ports?: PortSpec[];
}

interface CompiledPolicy {
  name: string;
  network?: string;
  selector: Selector;
  ingress?: CompiledRule[];
  egress?: CompiledRule[];
}

/** Computes every ipset, filter chain and nat chain Sluice wants on `input.node`. */
export function compileFirewall(input: CompileInput): FirewallState {
  const networks = new Map(input.networks.map((n) => [n.key, n]));
  const policies = compilePolicies(input.policies);
  const sets = new IpSetBook(input.endpoints);
  sets.add({ name: POOLS_SET, type: 'hash:net', members: input.networks.map((n) => n.subnet) });

  const local = input.endpoints.filter((e) => e.node === input.node).sort((a, b) => compareText(a.hostIfname, b.hostIfname));
  const used: Record<Direction, Set<CompiledPolicy>> = { ingress: new Set(), egress: new Set() };
  const endpointChains = local.flatMap((e) => endpointChainsOf(e, networks.get(e.network), policies, sets, used));
  const policyChains = (['ingress', 'egress'] as const).flatMap((direction) =>
    [...used[direction]].map((p) => policyChain(p, direction, sets)),
  );
  const filter = [forwardChain(), ...dispatchChains(local), ...endpointChains, ...policyChains];
  const nat: Chain[] = [
    { name: DNAT_CHAIN, rules: local.flatMap(dnatRules) },
    {
      name: POSTROUTING_CHAIN,
      rules: [rule('sluice: masquerade to outside', `-m set --match-set ${POOLS_SET} src -m set ! --match-set ${POOLS_SET} dst -j MASQUERADE`)],
    },
  ];
  return { ipsets: sets.sorted(), filter: byName(filter), nat: byName(nat) };
}

// ---- policies ----

/** Parses each policy's selectors once, and sorts the policies into evaluation order. */
function compilePolicies(policies: readonly Policy[]): CompiledPolicy[] {
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

function selects(policy: CompiledPolicy, network: NetworkRecord, labels: Labels): boolean {
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

// ---- per-endpoint chains ----

/** The from-workload and to-workload chains of one local endpoint; records the policies they jump to in `used`. */
function endpointChainsOf(
  endpoint: EndpointRecord,
  network: NetworkRecord | undefined,
  policies: CompiledPolicy[],
  sets: IpSetBook,
  used: Record<Direction, Set<CompiledPolicy>>,
): Chain[] {
  const from = endpointChainName('from', endpoint.hostIfname);
  const to = endpointChainName('to', endpoint.hostIfname);
  // No packet may pass under the wrong policy: without labels (or its network) the endpoint gets nothing.
  const failClosed = (reason: string): Chain[] => [
    { name: from, rules: [rule(`sluice: ${reason} (fail closed)`, '-j DROP')] },
    { name: to, rules: [rule(`sluice: ${reason} (fail closed)`, '-j DROP')] },
  ];
  const labels = endpoint.labels;
  if (labels === null) return failClosed(`labels of ${endpoint.id} not known yet`);
  if (network === undefined) return failClosed(`network ${endpoint.network} of ${endpoint.id} not known`);
  const selecting = (direction: Direction): CompiledPolicy[] => {
    const found = policies.filter((p) => p[direction] !== undefined && selects(p, network, labels));
    found.forEach((p) => used[direction].add(p));
    return found;
  };
  return [
    { name: from, rules: [rule(`sluice: anti-spoofing ${endpoint.id}`, `! -s ${endpoint.address}/32 -j DROP`), ...egressRules(selecting('egress'))] },
    { name: to, rules: ingressRules(selecting('ingress'), sets.networkSet(network)) },
  ];
}

/** Jumps to the policies in order; the first allow returns (mark set), the first deny drops. */
function policyJumps(policies: CompiledPolicy[], direction: Direction): string[] {
  return [
    rule('sluice: clear accept mark', `-j MARK --set-xmark 0x0/${ACCEPT_MARK}`),
    ...policies.flatMap((p) => [
      rule(`policy ${p.name}`, `-j ${policyChainName(direction, p.name)}`),
      rule(`policy ${p.name} allowed`, `-m mark --mark ${ACCEPT_MARK}/${ACCEPT_MARK} -j RETURN`),
    ]),
    rule(`sluice: default deny ${direction} (selected by policy)`, '-j DROP'),
  ];
}

function egressRules(policies: CompiledPolicy[]): string[] {
  return policies.length > 0 ? policyJumps(policies, 'egress') : [rule('sluice: default allow egress', '-j RETURN')];
}

/**
 * Without a selecting policy: own network in, other sluice networks out, and
 * anything else (the outside world, the host, published ports, since DNAT
 * keeps the outside source) in.
 */
function ingressRules(policies: CompiledPolicy[], sameNetworkSet: string): string[] {
  if (policies.length > 0) return policyJumps(policies, 'ingress');
  return [
    rule('sluice: default same-network', `-m set --match-set ${sameNetworkSet} src -j RETURN`),
    rule('sluice: default deny other sluice networks', `-m set --match-set ${POOLS_SET} src -j DROP`),
    rule('sluice: default allow non-sluice sources', '-j RETURN'),
  ];
}

// ---- top-level chains ----

function forwardChain(): Chain {
  return {
    name: FORWARD_CHAIN,
    rules: [
      // Scoped to sluice veths, so other forwarded traffic is left to the host's own rules.
      rule('sluice: not sluice traffic', `! -i ${ALL_SLUICE_IFACES} ! -o ${ALL_SLUICE_IFACES} -j RETURN`),
      rule('sluice: established', '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'),
      rule('sluice: invalid', '-m conntrack --ctstate INVALID -j DROP'),
      rule('sluice: from workload', `-i ${ALL_SLUICE_IFACES} -j ${FROM_WORKLOAD_CHAIN}`),
      rule('sluice: to workload', `-o ${ALL_SLUICE_IFACES} -j ${TO_WORKLOAD_CHAIN}`),
      rule('sluice: allowed', '-j ACCEPT'),
    ],
  };
}

/**
 * One rule per local endpoint: fine up to the ~100 endpoints a host runs
 * (Felix switches to a prefix tree beyond that). Goto, so an endpoint
 * chain's RETURN goes straight back to SLUICE-FORWARD.
 */
function dispatchChains(local: EndpointRecord[]): Chain[] {
  const dispatch = (name: string, flag: '-i' | '-o', direction: 'from' | 'to'): Chain => ({
    name,
    rules: [
      ...local.map((e) => rule(`sluice: endpoint ${e.id}`, `${flag} ${e.hostIfname} -g ${endpointChainName(direction, e.hostIfname)}`)),
      rule('sluice: unknown interface', '-j DROP'),
    ],
  });
  return [dispatch(FROM_WORKLOAD_CHAIN, '-i', 'from'), dispatch(TO_WORKLOAD_CHAIN, '-o', 'to')];
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

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => compareText(a.name, b.name));
}

/** Numeric order ("10.0.0.2" before "10.0.0.10"), duplicates dropped. */
function sortAddresses(members: readonly string[]): string[] {
  const key = (member: string): number => {
    const [ip, prefix] = member.split('/');
    return (parseIp(ip ?? '') ?? 0) * 64 + Number(prefix ?? 32);
  };
  return [...new Set(members)].sort((a, b) => key(a) - key(b) || compareText(a, b));
}
