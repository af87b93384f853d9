/**
 * The chains of this host that name no policy: SLUICE-FORWARD and SLUICE-INPUT
 * (with the protected destinations and the --internal isolation), the
 * workload chains that gate into the policy chains and end in the default
 * ingress, and SLUICE-DNAT's rules for published ports. See compile.ts for
 * how they fit together.
 */
import {
  ALL_SLUICE_IFACES,
  EGRESS_GOVERNED_SET,
  FORWARD_CHAIN,
  FROM_WORKLOAD_CHAIN,
  INGRESS_GOVERNED_SET,
  INPUT_CHAIN,
  LOCAL_SET,
  POOLS_SET,
  PROTECTED_ADDRESSES_SET,
  PROTECTED_SET,
  TO_WORKLOAD_CHAIN,
} from '../firewall/names';
import type { Match, Rule } from '../firewall/rule';
import { compareText, type Chain } from '../firewall/state';
import type { EndpointRecord, NetworkRecord, PortMapping } from '../model';
import * as ip from '../net/ip';
import { boundToEvery, publishedIn } from './family';
import {
  ACCEPT_MARK,
  multiportChunks,
  portRange,
  rule,
  setMatch,
  type CompiledPolicy,
  type Direction,
  type PolicyChainCache,
  type SetBook,
} from './policy-chains';

/** A direction that policies govern: its set, the union of these target sets. */
export interface Governed {
  name: string;
  targets: string[];
}

// ---- workload chains ----

/**
 * SLUICE-FROM-WL (egress, matching the source) or SLUICE-TO-WL (ingress,
 * matching the destination): the policies of the direction in order, each
 * gated by the set of local endpoints it selects, then default-deny for every
 * endpoint some of them selected, then `defaults` for the rest.
 */
export function workloadChain(
  direction: Direction,
  policies: readonly CompiledPolicy[],
  sets: SetBook,
  defaults: Rule[],
  cache: PolicyChainCache,
): Chain & { governed?: Governed } {
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


/**
 * Ingress of an endpoint no policy selects: own network in, other sluice
 * networks out, and anything else (the outside world, the host, published
 * ports, since DNAT keeps the outside source) in.
 */
export function defaultIngress(networks: { key: string; set: string }[]): Rule[] {
  return [
    ...networks.map((n) => rule(`sluice: default same network ${n.key}`, [setMatch(n.set, 'dst'), setMatch(n.set, 'src')], { kind: 'RETURN' })),
    rule('sluice: default deny other sluice networks', [setMatch(POOLS_SET, 'src')], { kind: 'DROP' }),
    rule('sluice: default allow non-sluice sources', [], { kind: 'RETURN' }),
  ];
}

// ---- top-level chains ----

/** The ipset of the `--internal` networks' subnets; undefined (no set, no rules) when there are none. */
export function internalSet(networks: readonly NetworkRecord[], sets: SetBook): string | undefined {
  const internal = networks.filter((n) => n.settings?.internal === true).map((n) => n.subnet);
  return internal.length === 0 ? undefined : sets.netSet(internal);
}

const fromWorkload: Extract<Match, { kind: 'in-interface' }> = { kind: 'in-interface', name: ALL_SLUICE_IFACES };

export function forwardChain(internal: string | undefined): Chain {
  // --internal: nothing between its containers and anything outside the sluice networks, either
  // way. (Replies never get here: without a first packet let through there is no connection.)
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
      // The FORWARD hooks accept this before the jump, cheaper (firewall-plan's HOOKS); here it
      // keeps the chain whole where they are missing: a host hooked by an older version, damage.
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
 * ICMPv6 neighbour solicitation and advertisement: how a container finds its
 * gateway (answered by the host's proxy NDP). Not subject to policy, as ARP
 * is not; spoofing a neighbour this way gains nothing, since the host's
 * entries for its containers are permanent.
 */
const NEIGHBOUR_DISCOVERY = [135, 136];

/**
 * Containers reaching the host itself pass their egress side too. What is
 * allowed RETURNs, not ACCEPTs, so the host's own INPUT rules still decide,
 * replies included. The control plane on this host is closed first. DNS to
 * the resolver is accepted before any policy: a container that may talk to
 * nothing else still resolves names (and only port 53 of that address opens).
 * IPv6 has neighbour discovery accepted first.
 */
export function inputChain(hostPorts: readonly number[], dnsAddress: string | undefined, family: ip.Family = 4): Chain {
  return {
    name: INPUT_CHAIN,
    rules: [
      rule('sluice: not from a workload', [{ ...fromWorkload, negated: true }], { kind: 'RETURN' }),
      rule('sluice: established (left to the host rules)', [{ kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] }], { kind: 'RETURN' }),
      ...(family === 4
        ? []
        : NEIGHBOUR_DISCOVERY.map((type) => rule('sluice: neighbour discovery', [{ kind: 'protocol', protocol: 'icmp' }, { kind: 'icmp-type', type }], { kind: 'ACCEPT' }))),
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
 * `docker run -p` for tcp and udp (sctp is not supported here), on the host
 * addresses of the endpoint's family. A host port range ("-p 8000-8010:80") forwards every port
 * of the range to the one container port. The dataplane jumps here only for
 * the host's own addresses (`-m addrtype --dst-type LOCAL`), so traffic
 * passing through is never redirected.
 */
export function dnatRules(endpoint: EndpointRecord): Rule[] {
  const family = ip.parseIp(endpoint.address)?.family ?? 4;
  return endpoint.ports
    .filter((m): m is PortMapping & { proto: 'tcp' | 'udp' } => (m.proto === 'tcp' || m.proto === 'udp') && publishedIn(m, family))
    .sort(comparePortMappings)
    .map((m) =>
      rule(
        `sluice: publish ${endpoint.id}`,
        [
          { kind: 'protocol', protocol: m.proto },
          ...(boundToEvery(m) ? [] : [{ kind: 'destination' as const, address: m.hostIp! }]),
          { kind: 'destination-port', ports: { first: m.hostPort, last: Math.max(m.hostPort, m.hostPortEnd) } },
        ],
        { kind: 'DNAT', address: endpoint.address, port: m.containerPort },
      ),
    );
}

function comparePortMappings(a: PortMapping, b: PortMapping): number {
  return compareText(a.proto, b.proto) || a.hostPort - b.hostPort || compareText(a.hostIp ?? '', b.hostIp ?? '') || a.containerPort - b.containerPort;
}
