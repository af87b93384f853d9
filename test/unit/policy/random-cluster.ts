/**
 * Random clusters (two networks, two hosts, random labels and policies) and
 * the kernel's verdict for a packet between two of their endpoints, from the
 * compiled rules run through the packet simulator on each host involved.
 */
import type { EndpointRecord, NetworkRecord } from '../../../src/model';
import { compileFirewall } from '../../../src/policy/compile';
import type { EgressRule, IngressRule, Policy, PortSpec, RuleProtocol } from '../../../src/policy-document/policy';
import { parseSelector } from '../../../src/policy-document/selector';
import { FilterSim } from '../../helpers/packet-sim';
import { appnet, dbnet, endpoint } from './fixtures';

export interface Cluster {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  policies: Policy[];
}

const NODES = ['h1', 'h2'];
const SELECTORS = ["role == 'web'", "role == 'db'", 'has(tier)', 'all()', "role in {'web', 'client'}", "!has(role)", "tier != 'a'"];
const NETS = [['10.96.0.0/25'], ['10.97.0.0/16'], ['0.0.0.0/0'], ['10.96.0.0/28', '10.97.0.0/16'], ['fd00:96::/120'], ['::/0'], ['10.96.0.0/25', 'fd00:96::/64']];
const PORTS: PortSpec[] = [80, 443, '8000-8100', 53, '1-1024', 5432];
/** Ports at and beside every rule port boundary, plus a few others. */
export const PROBE_PORTS = [1, 22, 53, 54, 79, 80, 81, 443, 1024, 1025, 5432, 7999, 8000, 8050, 8100, 8101, 65535];

export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function some<T>(rand: () => number, items: readonly T[], max: number): T[] {
  return [...new Set(Array.from({ length: 1 + Math.floor(rand() * max) }, () => pick(rand, items)))];
}

function randomRule(rand: () => number): IngressRule & EgressRule {
  const protocol = pick<RuleProtocol | undefined>(rand, [undefined, 'tcp', 'tcp', 'udp', 'icmp']);
  const rule: IngressRule & EgressRule = { action: rand() < 0.7 ? 'allow' : 'deny' };
  if (protocol !== undefined) rule.protocol = protocol;
  if ((protocol === 'tcp' || protocol === 'udp') && rand() < 0.7) rule.ports = some(rand, PORTS, 3);
  return rule;
}

export function randomPolicy(rand: () => number, name: string): Policy {
  const policy: Policy = { kind: 'NetworkPolicy', name, selector: parseSelector(pick(rand, SELECTORS)).toString(), order: pick(rand, [10, 100, 1000]) };
  if (rand() < 0.3) policy.network = pick(rand, ['appnet', 'dbnet']);
  const rules = (): (IngressRule & EgressRule)[] => Array.from({ length: Math.floor(rand() * 4) }, () => randomRule(rand));
  const peer = (): string | undefined => (rand() < 0.6 ? parseSelector(pick(rand, SELECTORS)).toString() : undefined);
  const nets = (): string[] | undefined => (rand() < 0.3 ? pick(rand, NETS) : undefined);
  const direction = pick(rand, ['ingress', 'egress', 'both']);
  if (direction !== 'egress') policy.ingress = rules().map(({ action, protocol, ports }) => ({ action, protocol, ports, from: peer(), fromNets: nets() }));
  if (direction !== 'ingress') policy.egress = rules().map(({ action, protocol, ports }) => ({ action, protocol, ports, to: peer(), toNets: nets() }));
  return policy;
}

export function randomCluster(rand: () => number, endpointCount: number, policyCount: number): Cluster {
  const endpoints = Array.from({ length: endpointCount }, (_, i) => {
    // A few endpoints fail closed: labels not learned yet.
    const labels = rand() < 0.1 ? null : { role: pick(rand, ['web', 'db', 'client']), ...(rand() < 0.5 ? { tier: pick(rand, ['a', 'b']) } : {}) };
    const network = rand() < 0.6 ? appnet : dbnet;
    // Scattered over the /24, so CIDR rules (a /25, a /28) split a network's endpoints.
    const address = `${network.subnet.split('.').slice(0, 2).join('.')}.${Math.floor(i / 250)}.${((i * 37) % 250) + 2}`;
    return { ...endpoint(`e${i}`, pick(rand, NODES), network, address, labels), containerName: `c${i}` };
  });
  const policies = Array.from({ length: policyCount }, (_, i) => randomPolicy(rand, `p${i}`));
  return { networks: [appnet, dbnet], endpoints, policies };
}

/** The kernel's verdict, from each host's compiled rules (compiled once per host). */
export class Kernel {
  private readonly sims = new Map<string, FilterSim>();

  constructor(private readonly cluster: Cluster) {}

  /** 'allow' when the packet gets through the rules of every host on its way. */
  verdict(from: EndpointRecord, to: EndpointRecord, proto: RuleProtocol, dport?: number): 'allow' | 'deny' {
    const packet = { src: from.address, dst: to.address, proto, dport };
    if (from.node === to.node) {
      return this.sim(from.node).forward({ ...packet, inIf: from.hostIfname, outIf: to.hostIfname }) === 'ACCEPT' ? 'allow' : 'deny';
    }
    const sent = this.sim(from.node).forward({ ...packet, inIf: from.hostIfname, outIf: 'eth0' });
    const received = this.sim(to.node).forward({ ...packet, inIf: 'eth0', outIf: to.hostIfname });
    return sent === 'ACCEPT' && received === 'ACCEPT' ? 'allow' : 'deny';
  }

  private sim(node: string): FilterSim {
    let sim = this.sims.get(node);
    if (sim === undefined) {
      sim = new FilterSim(compileFirewall({ node, ...this.cluster }));
      this.sims.set(node, sim);
    }
    return sim;
  }
}
