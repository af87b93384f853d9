/**
 * A tiny iptables interpreter for the typed rules the policy compiler emits,
 * so tests can ask "would this packet pass?" of a FirewallState instead of
 * reading rules. A match or action it does not simulate throws, so a new kind
 * of rule cannot be silently misjudged.
 */
import type { Match, PortRange } from '../../src/firewall/rule';
import type { Chain, FirewallState, IpSet } from '../../src/firewall/state';
import { contains, parseCidr, parseIp } from '../../src/net/ip';

export interface Packet {
  /** Interface the packet came in on ('' for none). */
  inIf: string;
  outIf: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  dport?: number;
  /** ICMP (ICMPv6 for IPv6 addresses) message type. */
  icmpType?: number;
  ctstate?: 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID';
}

/** RETURN: the top-level chain fell through, leaving the packet to the host's other rules. */
export type Verdict = 'ACCEPT' | 'DROP' | 'RETURN';

/**
 * `sides` as in `--match-set NAME src` or, for hash:net,iface, `src,src` (source, in-interface) / `dst,dst` (destination, out-interface),
 * for hash:ip,port `dst,dst` (destination address and port).
 */
function inSet(set: IpSet, sides: string, packet: Packet): boolean {
  const [side, ifaceSide, extra] = sides.split(',');
  if (extra !== undefined || (side !== 'src' && side !== 'dst')) throw new Error(`unknown set sides ${sides}`);
  const twoSided = set.type === 'hash:net,iface' || set.type === 'hash:ip,port';
  if (twoSided !== (ifaceSide !== undefined)) throw new Error(`sides ${sides} do not fit ${set.type} set ${set.name}`);
  const address = side === 'src' ? packet.src : packet.dst;
  if (set.type === 'hash:ip,port') {
    if (sides !== 'dst,dst') throw new Error(`sides ${sides} not simulated for ${set.type} set ${set.name}`);
    return set.members.includes(`${address},${packet.proto}:${packet.dport}`);
  }
  const iface = ifaceSide === undefined ? undefined : ifaceSide === 'src' ? packet.inIf : packet.outIf;
  const ip = parseIp(address)!;
  return set.members.some((m) => {
    const [net, memberIface] = m.split(',');
    const netMatches = set.type === 'hash:ip' ? net === address : contains(parseCidr(net!.includes('/') ? net! : `${net}/${ip.family === 4 ? 32 : 128}`)!, ip);
    return netMatches && memberIface === iface;
  });
}

function ifaceMatches(pattern: string, iface: string): boolean {
  return pattern.endsWith('+') ? iface.startsWith(pattern.slice(0, -1)) : iface === pattern;
}

function inRange(port: number | undefined, range: PortRange): boolean {
  return port !== undefined && port >= range.first && port <= range.last;
}

export class FilterSim {
  private readonly chains: Map<string, Chain>;
  private readonly sets: Map<string, IpSet>;

  constructor(state: FirewallState) {
    this.chains = new Map(state.filter.map((c) => [c.name, c]));
    this.sets = new Map(state.ipsets.map((s) => [s.name, s]));
  }

  /** Verdict of SLUICE-FORWARD for the packet. */
  forward(packet: Packet): Verdict {
    return this.run('SLUICE-FORWARD', packet, { mark: 0 }, 0);
  }

  /** Verdict of SLUICE-INPUT for a packet to the host itself (`outIf` unused). */
  input(packet: Packet): Verdict {
    return this.run('SLUICE-INPUT', packet, { mark: 0 }, 0);
  }

  private run(chainName: string, packet: Packet, ctx: { mark: number }, depth: number): Verdict {
    const chain = this.chains.get(chainName);
    if (chain === undefined) throw new Error(`jump to missing chain ${chainName}`);
    if (depth > 10) throw new Error('chain loop');
    for (const rule of chain.rules) {
      if (!rule.matches.every((match) => this.matches(match, packet, ctx))) continue;
      const action = rule.action;
      switch (action.kind) {
        case 'MARK':
          ctx.mark = ((ctx.mark & ~action.mask) ^ action.value) >>> 0;
          continue;
        case 'ACCEPT':
        case 'DROP':
        case 'RETURN':
          return action.kind;
        case 'jump': {
          const verdict = this.run(action.chain, packet, ctx, depth + 1);
          if (verdict !== 'RETURN') return verdict;
          continue;
        }
        default:
          throw new Error(`${action.kind} is not simulated in the filter table: ${JSON.stringify(rule)}`);
      }
    }
    return 'RETURN';
  }

  private matches(match: Match, packet: Packet, ctx: { mark: number }): boolean {
    const holds = ((): boolean => {
      switch (match.kind) {
        case 'in-interface':
          return ifaceMatches(match.name, packet.inIf);
        case 'out-interface':
          return ifaceMatches(match.name, packet.outIf);
        case 'protocol':
          return match.protocol === packet.proto;
        case 'destination':
          return match.address === packet.dst;
        case 'destination-port':
          return inRange(packet.dport, match.ports);
        case 'icmp-type':
          return match.type === packet.icmpType;
        case 'multiport':
          return match.ports.some((range) => inRange(packet.dport, range));
        case 'conntrack':
          return match.states.includes(packet.ctstate ?? 'NEW');
        case 'mark':
          return (ctx.mark & match.mask) >>> 0 === match.value;
        case 'set': {
          const set = this.sets.get(match.set);
          if (set === undefined) throw new Error(`missing set ${match.set}`);
          return inSet(set, match.sides, packet);
        }
      }
    })();
    return 'negated' in match && match.negated === true ? !holds : holds;
  }
}
