/**
 * `sluice policy apply --dry-run` / `policy rm --dry-run`: the endpoint pairs,
 * protocols and ports whose verdict a policy change would flip.
 *
 * Evaluating every pair at every port would not scale (5,000 endpoints are 25
 * million pairs), so endpoints are first grouped into classes that every
 * verdict treats alike: same network, same labels-known, selected by the same
 * policies, matched by the same rule peers (selectors and CIDRs) and in the
 * same network by address. One member of each class stands for all, and a
 * verdict covers a whole protocol at once as port segments.
 */
import type { EndpointRecord, NetworkRecord } from '../model';
import { compareText } from '../firewall/state';
import { type CompiledPolicy, compilePolicies } from './policy-chains';
import { endpointName } from './explain';
import type { Policy, PortSpec, RuleProtocol } from '../policy-document/policy';
import { matches } from '../policy-document/selector';
import {
  type Cluster,
  type Segment,
  type Verdict,
  PROTOCOLS,
  combine,
  decideSide,
  merge,
  netsContain,
  networkOfAddress,
  portSpecs,
  selectingPolicies,
} from './verdict';

export interface Change {
  from: string;
  to: string;
  protocol: RuleProtocol;
  /** Undefined for icmp, which has no ports. */
  ports?: PortSpec[];
  before: Verdict;
  after: Verdict;
}

/** What would change between the `before` and `after` policy sets, pair by pair. */
export function dryRun(
  networks: readonly NetworkRecord[],
  endpoints: readonly EndpointRecord[],
  before: readonly Policy[],
  after: readonly Policy[],
): Change[] {
  const networkMap = new Map(networks.map((n) => [n.key, n]));
  const clusters = [before, after].map((p): Cluster => ({ networks: networkMap, policies: compilePolicies(p) })) as [Cluster, Cluster];
  const classes = [...classify(clusters, endpoints).values()].map((members) => {
    const representative = members[0]!;
    const selecting = clusters.map((c) => ({
      egress: selectingPolicies(c, representative, 'egress'),
      ingress: selectingPolicies(c, representative, 'ingress'),
    }));
    return { members, representative, selecting };
  });
  const changes: Change[] = [];
  for (const sender of classes) {
    for (const receiver of classes) {
      for (const protocol of PROTOCOLS) {
        const verdicts = clusters.map((cluster, i) =>
          combine(
            decideSide(cluster, 'egress', sender.representative, sender.selecting[i]!.egress, receiver.representative, protocol),
            decideSide(cluster, 'ingress', receiver.representative, receiver.selecting[i]!.ingress, sender.representative, protocol),
            (e, g): Verdict => (e.verdict === 'allow' && g.verdict === 'allow' ? 'allow' : 'deny'),
          ),
        ) as [Segment<Verdict>[], Segment<Verdict>[]];
        const flips = merge(combine(verdicts[0], verdicts[1], (b, a) => (b === a ? '' : `${b}>${a}`))).filter((s) => s.value !== '');
        for (const flip of ['allow>deny', 'deny>allow']) {
          const segments = flips.filter((s) => s.value === flip);
          if (segments.length === 0) continue;
          const [was, willBe] = flip.split('>') as [Verdict, Verdict];
          const ports = protocol === 'icmp' ? undefined : portSpecs(segments);
          for (const from of sender.members) {
            for (const to of receiver.members) {
              if (from !== to) changes.push({ from: endpointName(from), to: endpointName(to), protocol, ports, before: was, after: willBe });
            }
          }
        }
      }
    }
  }
  return changes.sort((a, b) => compareText(a.from, b.from) || compareText(a.to, b.to) || PROTOCOLS.indexOf(a.protocol) - PROTOCOLS.indexOf(b.protocol) || compareText(a.before, b.before));
}

/**
 * Endpoints grouped by everything a verdict reads of them. The label-dependent
 * part is computed once per distinct (network, labels).
 */
function classify(clusters: readonly Cluster[], endpoints: readonly EndpointRecord[]): Map<string, EndpointRecord[]> {
  const policies: CompiledPolicy[] = clusters.flatMap((c) => c.policies);
  const rules = policies.flatMap((p) => [...(p.ingress ?? []), ...(p.egress ?? [])]);
  const peers = [...new Map(rules.flatMap((r) => (r.peer === undefined ? [] : [[r.peer.toString(), r.peer] as const]))).values()];
  const peerNets = [...new Map(rules.flatMap((r) => (r.peerNets === undefined ? [] : [[r.peerNets.join(','), r.peerNets] as const]))).values()];
  const bits = (values: boolean[]): string => values.map((v) => (v ? '1' : '0')).join('');
  const byLabels = new Map<string, string>();
  const labelPart = (e: EndpointRecord): string => {
    const key = `${e.network} ${e.labels === null ? '?' : JSON.stringify(Object.entries(e.labels).sort())}`;
    let part = byLabels.get(key);
    if (part === undefined) {
      // Per policy set and direction: the selecting policies' names, or '?' when fail-closed.
      const names = clusters
        .flatMap((c) => [selectingPolicies(c, e, 'egress'), selectingPolicies(c, e, 'ingress')])
        .map((selected) => selected?.map((p) => p.name).join(',') ?? '?')
        .join('/');
      const labels = e.labels;
      part = `${key.split(' ')[0]} ${names} ${labels === null ? '?' : bits(peers.map((s) => matches(s, labels)))}`;
      byLabels.set(key, part);
    }
    return part;
  };
  const classes = new Map<string, EndpointRecord[]>();
  for (const e of endpoints) {
    const signature = `${labelPart(e)} ${bits(peerNets.map((nets) => netsContain(nets, e.address)))} ${networkOfAddress(clusters[0]!, e.address)?.key ?? '-'}`;
    const members = classes.get(signature);
    if (members === undefined) classes.set(signature, [e]);
    else members.push(e);
  }
  return classes;
}
