/**
 * A firewall rule as a value: what it matches, what it does, and the comment
 * that says why (every Sluice rule has one; metrics and `iptables -L` read
 * it). The policy compiler builds these, the packet simulator and the
 * recording dataplane read them, and only the Linux dataplane turns them into
 * `iptables-restore` or `ip6tables-restore` text (renderRule), so nothing
 * parses rules back. A rule is the same value in both families; only its
 * text differs where the tools do (ICMPv6, host prefixes, DNAT brackets).
 */
import type { Family } from '../net/ip';

/** Inclusive; a single port has first === last. */
export interface PortRange {
  first: number;
  last: number;
}

/**
 * How a set match reads the packet: `src`/`dst` for the address; for
 * hash:net,iface `src,src` (source, in-interface) or `dst,dst` (destination,
 * out-interface); for hash:ip,port `dst,dst` (destination address and port).
 */
export type SetSides = 'src' | 'dst' | 'src,src' | 'dst,dst';

export type ConnState = 'NEW' | 'RELATED' | 'ESTABLISHED' | 'INVALID';

export type Match =
  /** `-i`/`-o`; a name ending in `+` matches every interface with that prefix. */
  | { kind: 'in-interface'; name: string; negated?: true }
  | { kind: 'out-interface'; name: string; negated?: true }
  /** `icmp` is ICMPv6 (`ipv6-icmp`) in an IPv6 table. */
  | { kind: 'protocol'; protocol: 'tcp' | 'udp' | 'icmp' }
  /** After an icmp protocol match: one message type (ICMPv6's in an IPv6 table, e.g. 135 neighbour solicitation). */
  | { kind: 'icmp-type'; type: number }
  /** One destination address (`-d ADDRESS/32`, `/128` in IPv6). */
  | { kind: 'destination'; address: string }
  /** `--dport`, after a tcp or udp protocol match. */
  | { kind: 'destination-port'; ports: PortRange }
  /** `-m multiport --dports`: at most 15 slots, a range counting as two. */
  | { kind: 'multiport'; ports: PortRange[] }
  | { kind: 'set'; set: string; sides: SetSides; negated?: true }
  | { kind: 'conntrack'; states: ConnState[] }
  /** `-m mark --mark VALUE/MASK`: the masked packet mark equals value. */
  | { kind: 'mark'; value: number; mask: number };

export type Action =
  | { kind: 'ACCEPT' }
  | { kind: 'DROP' }
  | { kind: 'RETURN' }
  | { kind: 'MASQUERADE' }
  | { kind: 'jump'; chain: string }
  /** `-j MARK --set-xmark VALUE/MASK`: clears the mask bits, then xors value; the chain goes on. */
  | { kind: 'MARK'; value: number; mask: number }
  | { kind: 'DNAT'; address: string; port: number };

export interface Rule {
  comment: string;
  matches: Match[];
  action: Action;
}

/** What `iptables-save` shows after `-j`: the built-in target or the chain jumped to. */
export function ruleTarget(action: Action): string {
  return action.kind === 'jump' ? action.chain : action.kind;
}

/**
 * The rule as iptables-restore (`family` 4) or ip6tables-restore (6) takes it
 * after `-A CHAIN `. Comments are checked (state.ts) to hold no quote or line break.
 */
export function renderRule(rule: Rule, family: Family = 4): string {
  return [`-m comment --comment "${rule.comment}"`, ...rule.matches.map((m) => renderMatch(m, family)), renderAction(rule.action, family)].join(' ');
}

function renderMatch(match: Match, family: Family): string {
  const not = 'negated' in match && match.negated === true ? '! ' : '';
  switch (match.kind) {
    case 'in-interface':
      return `${not}-i ${match.name}`;
    case 'out-interface':
      return `${not}-o ${match.name}`;
    case 'protocol':
      return `-p ${match.protocol === 'icmp' && family === 6 ? 'ipv6-icmp' : match.protocol}`;
    case 'destination':
      return `-d ${match.address}/${family === 4 ? 32 : 128}`;
    case 'destination-port':
      return `--dport ${renderPorts(match.ports)}`;
    case 'icmp-type':
      return family === 4 ? `-m icmp --icmp-type ${match.type}` : `-m icmp6 --icmpv6-type ${match.type}`;
    case 'multiport':
      return `-m multiport --dports ${match.ports.map(renderPorts).join(',')}`;
    case 'set':
      return `-m set ${not}--match-set ${match.set} ${match.sides}`;
    case 'conntrack':
      return `-m conntrack --ctstate ${match.states.join(',')}`;
    case 'mark':
      return `-m mark --mark ${hex(match.value)}/${hex(match.mask)}`;
  }
}

function renderAction(action: Action, family: Family): string {
  switch (action.kind) {
    case 'jump':
      return `-j ${action.chain}`;
    case 'MARK':
      return `-j MARK --set-xmark ${hex(action.value)}/${hex(action.mask)}`;
    case 'DNAT':
      return `-j DNAT --to-destination ${family === 4 ? action.address : `[${action.address}]`}:${action.port}`;
    default:
      return `-j ${action.kind}`;
  }
}

function renderPorts(ports: PortRange): string {
  return ports.first === ports.last ? String(ports.first) : `${ports.first}:${ports.last}`;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}
