/**
 * The verdict of the compiled rules for traffic between two sluice endpoints,
 * computed from the compiler's own model (compilePolicies, selects) rather
 * than from iptables text, for `sluice policy explain` and `--dry-run`.
 *
 * It follows compile.ts's chains: the sender's egress side (SLUICE-FROM-WL)
 * and the receiver's ingress side (SLUICE-TO-WL) each decide on their own; the
 * packet passes when both allow. On a side: an endpoint with unknown labels or
 * network is dropped (fail closed); else the rules of the policies selecting
 * it, in policy order, first match decides; else default-deny if any such
 * policy selected it; else the default (egress allows; ingress allows the same
 * network and non-sluice sources and refuses other sluice networks).
 *
 * A side's answer is a list of port segments, so one evaluation covers every
 * port of a protocol.
 */
import type { EndpointRecord, NetworkRecord } from '../model';
import { contains, parseCidr, parseIp } from '../net/ipv4';
import * as ip from '../net/ip';
import { type CompiledPolicy, type CompiledRule, type Direction, selects } from './policy-chains';
import type { PortSpec, RuleProtocol } from '../policy-document/policy';
import { matches } from '../policy-document/selector';

export type Verdict = 'allow' | 'deny';
export const PROTOCOLS: readonly RuleProtocol[] = ['tcp', 'udp', 'icmp'];
export const MAX_PORT = 65535;

/** What decided one side. */
export type Reason =
  | { kind: 'rule'; policy: string; rule: number; text: string }
  | { kind: 'fail-closed'; text: string }
  | { kind: 'default-deny'; policies: string[] }
  | { kind: 'default-allow' }
  | { kind: 'same-network' }
  | { kind: 'other-network' };

export interface SideDecision {
  verdict: Verdict;
  reason: Reason;
}

/** Inclusive port range with one answer; icmp has one segment covering every "port". */
export interface Segment<T> {
  first: number;
  last: number;
  value: T;
}

/** The parts of the cluster a verdict depends on. */
export interface Cluster {
  networks: ReadonlyMap<string, NetworkRecord>;
  policies: readonly CompiledPolicy[];
}

type Range = [number, number];

/** The policies with rules of `direction` that select `endpoint`, in evaluation order; undefined when it is fail-closed. */
export function selectingPolicies(cluster: Cluster, endpoint: EndpointRecord, direction: Direction): CompiledPolicy[] | undefined {
  const network = cluster.networks.get(endpoint.network);
  if (endpoint.labels === null || network === undefined) return undefined;
  const labels = endpoint.labels;
  return cluster.policies.filter((p) => p[direction] !== undefined && selects(p, network, labels));
}

/**
 * One side's decision per port segment for `protocol`. `selecting` is
 * selectingPolicies(self), passed in so callers evaluating many peers compute
 * it once.
 */
export function decideSide(
  cluster: Cluster,
  direction: Direction,
  self: EndpointRecord,
  selecting: readonly CompiledPolicy[] | undefined,
  peer: EndpointRecord,
  protocol: RuleProtocol,
): Segment<SideDecision>[] {
  if (selecting === undefined) {
    const text = self.labels === null ? 'labels not yet known' : `network ${self.network} unknown`;
    return [{ first: 0, last: MAX_PORT, value: { verdict: 'deny', reason: { kind: 'fail-closed', text } } }];
  }
  const decided: Segment<SideDecision>[] = [];
  let open: Range[] = [[0, MAX_PORT]];
  for (const policy of selecting) {
    for (const [index, rule] of (policy[direction] ?? []).entries()) {
      if (open.length === 0) break;
      if ((rule.protocol !== undefined && rule.protocol !== protocol) || !peerMatches(rule, peer)) continue;
      const ports = rule.ports === undefined ? [[0, MAX_PORT] as Range] : portRanges(rule.ports);
      const value: SideDecision = { verdict: rule.action, reason: { kind: 'rule', policy: policy.name, rule: index, text: ruleText(rule, direction) } };
      for (const [first, last] of intersect(open, ports)) decided.push({ first, last, value });
      open = subtract(open, ports);
    }
  }
  const fallback = defaultDecision(cluster, direction, self, selecting, peer);
  return [...decided, ...open.map(([first, last]) => ({ first, last, value: fallback }))].sort((a, b) => a.first - b.first);
}

function defaultDecision(
  cluster: Cluster,
  direction: Direction,
  self: EndpointRecord,
  selecting: readonly CompiledPolicy[],
  peer: EndpointRecord,
): SideDecision {
  if (selecting.length > 0) return { verdict: 'deny', reason: { kind: 'default-deny', policies: selecting.map((p) => p.name) } };
  if (direction === 'egress') return { verdict: 'allow', reason: { kind: 'default-allow' } };
  // As the chain does it: by the source address, against the subnets of the networks.
  const network = networkOfAddress(cluster, peer.address);
  if (network === undefined) return { verdict: 'allow', reason: { kind: 'default-allow' } };
  return network.key === self.network
    ? { verdict: 'allow', reason: { kind: 'same-network' } }
    : { verdict: 'deny', reason: { kind: 'other-network' } };
}

export function networkOfAddress(cluster: Cluster, address: string): NetworkRecord | undefined {
  const ip = parseIp(address);
  return ip === undefined ? undefined : [...cluster.networks.values()].find((n) => contains(parseCidr(n.subnet)!, ip));
}

/** Whether a rule's peer side (selector, CIDRs) matches the endpoint at the other end. */
export function peerMatches(rule: CompiledRule, peer: EndpointRecord): boolean {
  if (rule.peer !== undefined && (peer.labels === null || !matches(rule.peer, peer.labels))) return false;
  return rule.peerNets === undefined || netsContain(rule.peerNets, peer.address);
}

export function netsContain(cidrs: readonly string[], address: string): boolean {
  const parsed = ip.parseIp(address);
  return parsed !== undefined && cidrs.some((c) => ip.contains(ip.parseCidr(c)!, parsed));
}

/** Both sides per port segment: allowed only where both allow. */
export function combine<A, B, T>(a: Segment<A>[], b: Segment<B>[], join: (a: A, b: B) => T): Segment<T>[] {
  const out: Segment<T>[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const first = Math.max(x.first, y.first);
    const last = Math.min(x.last, y.last);
    if (first <= last) out.push({ first, last, value: join(x.value, y.value) });
    if (x.last <= y.last) i++;
    else j++;
  }
  return out;
}

/** Adjacent segments with equal values merged. */
export function merge<T>(segments: Segment<T>[]): Segment<T>[] {
  const out: Segment<T>[] = [];
  for (const s of segments) {
    const last = out[out.length - 1];
    if (last !== undefined && last.value === s.value && last.last + 1 === s.first) last.last = s.last;
    else out.push({ ...s });
  }
  return out;
}

/** A rule as one line, e.g. "allow tcp from role == 'client' ports 80,8000-8100". */
export function ruleText(rule: CompiledRule, direction: Direction): string {
  const peerWord = direction === 'ingress' ? 'from' : 'to';
  return [
    rule.action,
    rule.protocol ?? 'any protocol',
    rule.peer === undefined ? undefined : `${peerWord} ${rule.peer.toString()}`,
    rule.peerNets === undefined ? undefined : `${peerWord}Nets ${rule.peerNets.join(',')}`,
    rule.ports === undefined ? undefined : `ports ${rule.ports.join(',')}`,
  ]
    .filter((part) => part !== undefined)
    .join(' ');
}

/** Sorted, merged ranges of a rule's port list. */
function portRanges(ports: readonly PortSpec[]): Range[] {
  const ranges = ports
    .map((p): Range => {
      if (typeof p === 'number') return [p, p];
      const [first, last] = p.split('-').map(Number);
      return [first!, last!];
    })
    .sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([...r]);
  }
  return out;
}

function intersect(a: Range[], b: Range[]): Range[] {
  return a.flatMap(([f1, l1]) =>
    b.flatMap(([f2, l2]): Range[] => {
      const first = Math.max(f1, f2);
      const last = Math.min(l1, l2);
      return first <= last ? [[first, last]] : [];
    }),
  );
}

function subtract(a: Range[], b: Range[]): Range[] {
  return b.reduce(
    (rest, [f2, l2]) =>
      rest.flatMap(([f1, l1]): Range[] => [
        ...(f1 < f2 ? [[f1, Math.min(l1, f2 - 1)] as Range] : []),
        ...(l1 > l2 ? [[Math.max(f1, l2 + 1), l1] as Range] : []),
      ]).filter(([f, l]) => f <= l),
    a,
  );
}

/** Ranges as policy port text: 80, "8000-8100". */
export function portSpecs(segments: readonly { first: number; last: number }[]): PortSpec[] {
  return segments.map((s) => (s.first === s.last ? s.first : `${s.first}-${s.last}`));
}
