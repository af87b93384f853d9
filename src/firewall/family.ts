/**
 * The IPv6 firewall is compiled like the IPv4 one (from the endpoints' IPv6
 * addresses and the networks' IPv6 pools) and then moved into IPv6's set
 * names here, so the compiler and its incremental twin need not know the
 * family: a set `sluice-x` of IPv4 is `sluice6x` of IPv6.
 */
import { IPSET_PREFIX, IPV6_IPSET_PREFIX } from './names';
import type { Match, Rule } from './rule';
import type { Chain, FirewallChange, FirewallState, IpSet } from './state';

export function ipv6SetName(name: string): string {
  return name.startsWith(IPSET_PREFIX) ? IPV6_IPSET_PREFIX + name.slice(IPSET_PREFIX.length) : name;
}

export function ipv6State(state: FirewallState): FirewallState {
  return { ipsets: state.ipsets.map(renameSet), filter: state.filter.map(renameChain), nat: state.nat.map(renameChain) };
}

export function ipv6Change(change: FirewallChange): FirewallChange {
  return {
    createdSets: change.createdSets.map(renameSet),
    members: change.members.map((m) => ({ ...m, name: ipv6SetName(m.name) })),
    chains: change.chains.map((c) => ({ table: c.table, chain: renameChain(c.chain) })),
    removedChains: change.removedChains,
    destroyedSets: change.destroyedSets.map(ipv6SetName),
  };
}

function renameSet(set: IpSet): IpSet {
  return { ...set, name: ipv6SetName(set.name) };
}

function renameChain(chain: Chain): Chain {
  return { name: chain.name, rules: chain.rules.map(renameRule) };
}

function renameRule(rule: Rule): Rule {
  return rule.matches.some((m) => m.kind === 'set') ? { ...rule, matches: rule.matches.map(renameMatch) } : rule;
}

function renameMatch(match: Match): Match {
  return match.kind === 'set' ? { ...match, set: ipv6SetName(match.set) } : match;
}
