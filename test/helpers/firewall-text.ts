/**
 * Golden-file text of a FirewallState: what `ipset restore` and
 * `iptables-restore` would be fed for a full rewrite, rules rendered as the
 * Linux dataplane renders them. For tests only; the Linux dataplane plans
 * its own (incremental) input from the same state.
 */
import { renderRule } from '../../src/firewall/rule';
import type { Chain, FirewallState } from '../../src/firewall/state';

function table(name: string, chains: Chain[]): string[] {
  return [
    `*${name}`,
    ...chains.map((c) => `:${c.name} - [0:0]`),
    ...chains.flatMap((c) => c.rules.map((r) => `-A ${c.name} ${renderRule(r)}`)),
    'COMMIT',
  ];
}

export function renderForGolden(state: FirewallState): string {
  const ipsets = state.ipsets.flatMap((s) => [
    `create ${s.name} ${s.type} family inet maxelem 1048576`,
    ...s.members.map((m) => `add ${s.name} ${m}`),
  ]);
  return [
    '# ipset restore',
    ...ipsets,
    '',
    '# iptables-restore',
    ...table('filter', state.filter),
    ...table('nat', state.nat),
    '',
  ].join('\n');
}

/** Every rule of `chains` as iptables-restore lines, for searching what the kernel would get. */
export function renderedRules(chains: readonly Chain[]): string {
  return table('any', [...chains]).join('\n');
}
