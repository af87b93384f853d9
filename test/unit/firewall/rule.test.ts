import { renderRule, ruleTarget, type Action, type Match, type Rule } from '../../../src/firewall/rule';
import { expectGolden } from '../../helpers/golden';

/** One rule per kind of match and of action, each as iptables-restore will read it. */
const matches: Match[] = [
  { kind: 'in-interface', name: 'slv+' },
  { kind: 'in-interface', name: 'slv+', negated: true },
  { kind: 'out-interface', name: 'slvabc', negated: true },
  { kind: 'protocol', protocol: 'udp' },
  { kind: 'destination', address: '169.254.53.53' },
  { kind: 'destination-port', ports: { first: 53, last: 53 } },
  { kind: 'destination-port', ports: { first: 8000, last: 8010 } },
  { kind: 'multiport', ports: [{ first: 80, last: 80 }, { first: 8000, last: 8100 }] },
  { kind: 'set', set: 'sluice-local', sides: 'src,src', negated: true },
  { kind: 'set', set: 'sluice-protected', sides: 'dst,dst' },
  { kind: 'conntrack', states: ['RELATED', 'ESTABLISHED'] },
  { kind: 'mark', value: 0x1000000, mask: 0x1000000 },
];
const actions: Action[] = [
  { kind: 'ACCEPT' },
  { kind: 'DROP' },
  { kind: 'RETURN' },
  { kind: 'MASQUERADE' },
  { kind: 'jump', chain: 'SLUICE-FROM-WL' },
  { kind: 'MARK', value: 0, mask: 0x1000000 },
  { kind: 'DNAT', address: '10.96.0.2', port: 80 },
];

describe('renderRule', () => {
  it('renders every kind of match and action as iptables-restore takes them, comment first', () => {
    const rules: Rule[] = [
      ...matches.map((match, i): Rule => ({ comment: `match ${i}`, matches: [match], action: { kind: 'RETURN' } })),
      ...actions.map((action): Rule => ({ comment: `action ${ruleTarget(action)}`, matches: [], action })),
      { comment: 'several, in order', matches: [{ kind: 'protocol', protocol: 'tcp' }, { kind: 'destination', address: '192.0.2.10' }, { kind: 'destination-port', ports: { first: 5353, last: 5353 } }], action: actions[6]! },
    ];
    expectGolden('render-rules.txt', rules.map((rule) => renderRule(rule, 4)).join('\n') + '\n');
  });

  it('renders ICMP, host addresses and DNAT in each family as its tool takes them', () => {
    const rule = (address: string, ...matches: Match[]): Rule => ({
      comment: 'c',
      matches: [{ kind: 'protocol', protocol: 'icmp' }, { kind: 'icmp-type', type: 8 }, { kind: 'destination', address }, ...matches],
      action: { kind: 'DNAT', address, port: 80 },
    });
    expect(renderRule(rule('10.96.0.2'), 4)).toBe('-m comment --comment "c" -p icmp -m icmp --icmp-type 8 -d 10.96.0.2/32 -j DNAT --to-destination 10.96.0.2:80');
    expect(renderRule(rule('fd00:96::2'), 6)).toBe(
      '-m comment --comment "c" -p ipv6-icmp -m icmp6 --icmpv6-type 8 -d fd00:96::2/128 -j DNAT --to-destination [fd00:96::2]:80',
    );
  });

  it('renders every other match and action alike in both families', () => {
    const neutral = [
      ...matches.filter((m) => m.kind !== 'destination').map((match): Rule => ({ comment: 'm', matches: [match], action: { kind: 'RETURN' } })),
      ...actions.filter((a) => a.kind !== 'DNAT').map((action): Rule => ({ comment: 'a', matches: [], action })),
    ];
    expect(neutral.map((rule) => renderRule(rule, 6))).toEqual(neutral.map((rule) => renderRule(rule, 4)));
  });

  it('names the target as iptables-save shows it', () => {
    expect(actions.map(ruleTarget)).toEqual(['ACCEPT', 'DROP', 'RETURN', 'MASQUERADE', 'SLUICE-FROM-WL', 'MARK', 'DNAT']);
  });
});
