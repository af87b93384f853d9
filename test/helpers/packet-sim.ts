/**
 * A tiny iptables interpreter for the rule subset the policy compiler emits,
 * so tests can ask "would this packet pass?" of a FirewallState instead of
 * reading rules. Any token it does not know throws, so a new kind of rule
 * cannot be silently misjudged.
 */
import type { Chain, FirewallState, IpSet } from '../../src/dataplane/dataplane';
import { contains, parseCidr, parseIp } from '../../src/net/ipv4';

export interface Packet {
  /** Interface the packet came in on ('' for none). */
  inIf: string;
  outIf: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  dport?: number;
  ctstate?: 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID';
}

/** RETURN: the top-level chain fell through, leaving the packet to the host's other rules. */
export type Verdict = 'ACCEPT' | 'DROP' | 'RETURN';

function tokenize(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

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
    const netMatches = set.type === 'hash:ip' ? net === address : contains(parseCidr(net!.includes('/') ? net! : `${net}/32`)!, ip);
    return netMatches && memberIface === iface;
  });
}

function ifaceMatches(pattern: string, iface: string): boolean {
  return pattern.endsWith('+') ? iface.startsWith(pattern.slice(0, -1)) : iface === pattern;
}

function parseMark(text: string): [number, number] {
  const [value, mask] = text.split('/');
  return [Number(value), Number(mask ?? '0xffffffff')];
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
      const { matched, target, setMark } = this.evaluate(rule, packet, ctx);
      if (!matched) continue;
      if (setMark !== undefined) {
        const [value, mask] = setMark;
        ctx.mark = ((ctx.mark & ~mask) ^ value) >>> 0;
        continue;
      }
      if (target === 'ACCEPT' || target === 'DROP' || target === 'RETURN') return target;
      if (target === undefined) continue;
      const verdict = this.run(target, packet, ctx, depth + 1);
      if (verdict !== 'RETURN') return verdict;
    }
    return 'RETURN';
  }

  private evaluate(
    rule: string,
    packet: Packet,
    ctx: { mark: number },
  ): { matched: boolean; target?: string; setMark?: [number, number] } {
    const t = tokenize(rule);
    let matched = true;
    let negate = false;
    let target: string | undefined;
    let setMark: [number, number] | undefined;
    const check = (result: boolean): void => {
      if (result === negate) matched = false;
      negate = false;
    };
    for (let i = 0; i < t.length; i++) {
      const token = t[i]!;
      const next = (): string => t[++i]!;
      switch (token) {
        case '!':
          negate = true;
          break;
        case '-m': {
          const module = next();
          if (!['comment', 'conntrack', 'set', 'multiport', 'mark'].includes(module)) throw new Error(`unknown match ${module} in: ${rule}`);
          break;
        }
        case '--comment':
          next();
          break;
        case '-i':
          check(ifaceMatches(next(), packet.inIf));
          break;
        case '-o':
          check(ifaceMatches(next(), packet.outIf));
          break;
        case '-p':
          check(next() === packet.proto);
          break;
        case '-d': {
          const [address, prefix] = next().split('/');
          if (prefix !== undefined && prefix !== '32') throw new Error(`only -d ADDR/32 is simulated, in: ${rule}`);
          check(address === packet.dst);
          break;
        }
        case '--dport':
          check(Number(next()) === packet.dport);
          break;
        case '--ctstate':
          check(next().split(',').includes(packet.ctstate ?? 'NEW'));
          break;
        case '--match-set': {
          const set = this.sets.get(next());
          if (set === undefined) throw new Error(`missing set in: ${rule}`);
          check(inSet(set, next(), packet));
          break;
        }
        case '--dports': {
          const port = packet.dport ?? -1;
          check(
            next()
              .split(',')
              .some((p) => {
                const [first, last] = p.split(':').map(Number);
                return port >= first! && port <= (last ?? first)!;
              }),
          );
          break;
        }
        case '--mark': {
          const [value, mask] = parseMark(next());
          check((ctx.mark & mask) >>> 0 === value);
          break;
        }
        case '-j':
          target = next();
          break;
        case '--set-xmark':
          if (target !== 'MARK') throw new Error(`--set-xmark without -j MARK in: ${rule}`);
          setMark = parseMark(next());
          break;
        default:
          throw new Error(`unknown token ${token} in: ${rule}`);
      }
    }
    return { matched, target, setMark };
  }
}
