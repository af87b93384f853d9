/**
 * Golden-file text of a FirewallState: what `ipset restore` and
 * `iptables-restore` would be fed for a full rewrite. For tests only; the
 * Linux dataplane renders its own (incremental) input from the same state.
 */
import type { Chain, FirewallState } from '../../src/dataplane/dataplane';

function table(name: string, chains: Chain[]): string[] {
  return [
    `*${name}`,
    ...chains.map((c) => `:${c.name} - [0:0]`),
    ...chains.flatMap((c) => c.rules.map((r) => `-A ${c.name} ${r}`)),
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
