/**
 * `sluice policy explain FROM TO`: which endpoints FROM and TO name, and why
 * traffic between them is allowed or denied, side by side.
 */
import { BadRequestError, NotFoundError } from '../errors';
import type { EndpointRecord } from '../model';
import type { Direction } from './policy-chains';
import type { RuleProtocol } from '../policy-document/policy';
import { type Cluster, type Reason, type SideDecision, type Verdict, decideSide, selectingPolicies } from './verdict';

export interface SideExplanation extends SideDecision {
  /** One line saying why, e.g. "policy web-in ingress[0]: allow tcp from role == 'client' ports 80". */
  why: string;
}

export interface Explanation {
  verdict: Verdict;
  egress: SideExplanation;
  ingress: SideExplanation;
}

export interface Packet {
  protocol: RuleProtocol;
  /** Destination port, for tcp and udp only. */
  port?: number;
}

/** The decision of each side for one packet from `from` to `to`. */
export function explain(cluster: Cluster, from: EndpointRecord, to: EndpointRecord, packet: Packet): Explanation {
  const side = (direction: Direction, self: EndpointRecord, peer: EndpointRecord): SideExplanation => {
    const segments = decideSide(cluster, direction, self, selectingPolicies(cluster, self, direction), peer, packet.protocol);
    const port = packet.port ?? 0;
    const { value } = segments.find((s) => s.first <= port && port <= s.last)!;
    return { ...value, why: describeReason(cluster, direction, self, peer, value.reason) };
  };
  const egress = side('egress', from, to);
  const ingress = side('ingress', to, from);
  return { verdict: egress.verdict === 'allow' && ingress.verdict === 'allow' ? 'allow' : 'deny', egress, ingress };
}

function describeReason(cluster: Cluster, direction: Direction, self: EndpointRecord, peer: EndpointRecord, reason: Reason): string {
  const networkName = (key: string): string => cluster.networks.get(key)?.name ?? key;
  switch (reason.kind) {
    case 'rule':
      return `policy ${reason.policy} ${direction}[${reason.rule}]: ${reason.text}`;
    case 'fail-closed':
      return `fail closed: ${reason.text}`;
    case 'default-deny':
      return `default deny: selected by ${reason.policies.map((p) => `policy ${p}`).join(', ')}, and no rule matched`;
    case 'default-allow':
      return direction === 'egress' ? 'default allow: no policy with egress rules selects it' : 'default allow: not from a sluice network';
    case 'same-network':
      return `default allow: same network ${networkName(self.network)}`;
    case 'other-network':
      return `default deny: from another sluice network (${networkName(peer.network)})`;
  }
}

export function formatExplanation(from: EndpointRecord, to: EndpointRecord, packet: Packet, e: Explanation): string {
  const what = packet.port === undefined ? packet.protocol : `${packet.protocol}/${packet.port}`;
  return [
    `${endpointName(from)} (${from.address}) -> ${endpointName(to)} (${to.address}) ${what}: ${e.verdict.toUpperCase()}`,
    `  egress of ${endpointName(from)}:  ${e.egress.verdict}  (${e.egress.why})`,
    `  ingress of ${endpointName(to)}: ${e.ingress.verdict}  (${e.ingress.why})`,
  ].join('\n');
}

export function endpointName(e: EndpointRecord): string {
  return e.containerName ?? e.id.slice(0, 12);
}

/** Shortest container-ID prefix accepted, as Docker's short IDs. */
const MIN_ID_PREFIX = 4;

/** The endpoints `query` names: an address, a container name, or a container ID (or prefix). */
function candidates(endpoints: readonly EndpointRecord[], query: string): EndpointRecord[] {
  const name = query.replace(/^\//, '');
  const byAddress = endpoints.filter((e) => e.address === query);
  if (byAddress.length > 0) return byAddress;
  const byName = endpoints.filter((e) => e.containerName?.replace(/^\//, '') === name);
  if (byName.length > 0) return byName;
  return query.length >= MIN_ID_PREFIX ? endpoints.filter((e) => e.containerId?.startsWith(query) === true) : [];
}

/**
 * The sending and receiving endpoints. A container on several networks has
 * several endpoints; it sends from the one on the receiver's network, so a
 * pair on one network is preferred. Anything still ambiguous is an error
 * listing the candidates.
 */
export function resolvePair(endpoints: readonly EndpointRecord[], from: string, to: string): [EndpointRecord, EndpointRecord] {
  const senders = candidates(endpoints, from);
  const receivers = candidates(endpoints, to);
  for (const [query, found] of [[from, senders], [to, receivers]] as const) {
    if (found.length === 0) throw new NotFoundError(`no sluice endpoint is a container named ${query}, a container ID starting ${query} or the address ${query}`);
  }
  const pairs = senders.flatMap((s) => receivers.map((r): [EndpointRecord, EndpointRecord] => [s, r]));
  const sameNetwork = pairs.filter(([s, r]) => s.network === r.network);
  const chosen = pairs.length === 1 ? pairs : sameNetwork;
  if (chosen.length === 1) return chosen[0]!;
  const ambiguous = senders.length > 1 ? ([from, senders] as const) : ([to, receivers] as const);
  const list = ambiguous[1].map((e) => `${endpointName(e)} ${e.address} on ${e.node} (container ${e.containerId?.slice(0, 12) ?? '?'})`).join('; ');
  throw new BadRequestError(`${ambiguous[0]} is ambiguous: ${list}; name an address instead`);
}
