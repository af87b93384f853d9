import { DataplaneError } from '../../../src/errors';
import type { FirewallState } from '../../../src/dataplane/dataplane';
import { normalizeFirewall, ruleComments, ruleTarget, ruleWords } from '../../../src/dataplane/firewall-state';

const empty = { ipsets: [], filter: [], nat: [] };

describe('normalizeFirewall', () => {
  it('always has the top-level chains, empty unless given', () => {
    const normal = normalizeFirewall({ ...empty, filter: [{ name: 'SLUICE-FORWARD', rules: ['-j ACCEPT'] }] });
    expect([...normal.chains.filter]).toEqual([
      ['SLUICE-FORWARD', ['-j ACCEPT']],
      ['SLUICE-INPUT', []],
    ]);
    expect([...normal.chains.nat]).toEqual([
      ['SLUICE-DNAT', []],
      ['SLUICE-POSTROUTING', []],
    ]);
  });

  it('spells members as ipset save does', () => {
    const normal = normalizeFirewall({
      ...empty,
      ipsets: [
        { name: 'sluice-a', type: 'hash:ip', members: ['10.0.0.1', '10.0.0.2/32'] },
        { name: 'sluice-n', type: 'hash:net', members: ['10.0.0.1/32', '10.1.2.3/16', '10.2.0.0/24'] },
        { name: 'sluice-l', type: 'hash:net,iface', members: ['10.0.0.1/32,slv0123456789a', '10.1.2.3/16,eth0', '10.0.0.2,sl0123456789b'] },
        { name: 'sluice-p', type: 'hash:ip,port', members: ['10.0.0.1/32,tcp:2379', '10.0.0.2,udp:053'] },
      ],
    });
    expect([...normal.sets.get('sluice-a')!.members]).toEqual(['10.0.0.1', '10.0.0.2']);
    expect([...normal.sets.get('sluice-n')!.members]).toEqual(['10.0.0.1', '10.1.0.0/16', '10.2.0.0/24']);
    expect([...normal.sets.get('sluice-l')!.members]).toEqual(['10.0.0.1,slv0123456789a', '10.1.0.0/16,eth0', '10.0.0.2,sl0123456789b']);
    expect([...normal.sets.get('sluice-p')!.members]).toEqual(['10.0.0.1,tcp:2379', '10.0.0.2,udp:53']);
  });

  it.each([
    ['a foreign set name', { ...empty, ipsets: [{ name: 'cali-x', type: 'hash:ip' as const, members: [] }] }, /not Sluice's/],
    ['the scratch set', { ...empty, ipsets: [{ name: 'sluice-tmp', type: 'hash:ip' as const, members: [] }] }, /not Sluice's/],
    ['a network in a hash:ip set', { ...empty, ipsets: [{ name: 'sluice-a', type: 'hash:ip' as const, members: ['10.0.0.0/24'] }] }, /not an IPv4 address/],
    ['a bad member', { ...empty, ipsets: [{ name: 'sluice-n', type: 'hash:net' as const, members: ['nope'] }] }, /not an IPv4 network/],
    ...['10.0.0.1', '10.0.0.1,', 'nope,sl0', '10.0.0.1,sl 0', '10.0.0.1,a/b', '10.0.0.1,sl0,x', `10.0.0.1,${'s'.repeat(16)}`].map(
      (member): [string, FirewallState, RegExp] => [
        `"${member}" in a hash:net,iface set`,
        { ...empty, ipsets: [{ name: 'sluice-l', type: 'hash:net,iface', members: [member] }] },
        /not an IPv4 network and an interface name/,
      ],
    ),
    ...['10.0.0.1', '10.0.0.1,2379', '10.0.0.0/24,tcp:2379', '10.0.0.1,icmp:8', '10.0.0.1,tcp:0', '10.0.0.1,tcp:65536', 'nope,tcp:1'].map(
      (member): [string, FirewallState, RegExp] => [
        `"${member}" in a hash:ip,port set`,
        { ...empty, ipsets: [{ name: 'sluice-p', type: 'hash:ip,port', members: [member] }] },
        /not an IPv4 address, a protocol and a port/,
      ],
    ),
    ['a duplicate set', { ...empty, ipsets: [{ name: 'sluice-a', type: 'hash:ip' as const, members: [] }, { name: 'sluice-a', type: 'hash:ip' as const, members: [] }] }, /twice/],
    ['a foreign chain', { ...empty, filter: [{ name: 'FORWARD', rules: [] }] }, /not Sluice's/],
    ['a duplicate chain', { ...empty, nat: [{ name: 'SLUICE-X', rules: [] }, { name: 'SLUICE-X', rules: [] }] }, /twice/],
    ['a jump to a missing chain', { ...empty, filter: [{ name: 'SLUICE-FORWARD', rules: ['-g SLUICE-gone'] }] }, /jumps to SLUICE-gone/],
    ['a match on a missing set', { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: ['-m set --match-set sluice-gone dst -j RETURN'] }] }, /matches ipset sluice-gone/],
    ...['-m comment --comment "x"\n-A SLUICE-DNAT -j ACCEPT', '-j RETURN\r', '-j RETURN\0', '-m comment --comment "x -j RETURN', "-m comment --comment 'x -j RETURN"].map(
      (rule): [string, FirewallState, RegExp] => [
        `the rule ${JSON.stringify(rule)}`,
        { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: [rule] }] },
        /has a line break or an unclosed quote/,
      ],
    ),
  ])('rejects %s', (_what, state, message) => {
    expect(() => normalizeFirewall(state)).toThrow(DataplaneError);
    expect(() => normalizeFirewall(state)).toThrow(message);
  });

  it('allows jumps to built-in targets and chains in the state, and matches on sets in it', () => {
    expect(() =>
      normalizeFirewall({
        ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: [] }],
        filter: [{ name: 'SLUICE-FORWARD', rules: ['-j SLUICE-X', '-m set --match-set sluice-a src -j DROP'] }, { name: 'SLUICE-X', rules: [] }],
        nat: [],
      }),
    ).not.toThrow();
  });
});

describe('rule words', () => {
  const rule = '-s 10.0.0.1 -m comment --comment "allow \\"web\\" in" -m comment --comment two -j SLUICE-X';

  it('splits like iptables-restore, quotes and escapes included', () => {
    expect(ruleWords(rule)).toEqual(['-s', '10.0.0.1', '-m', 'comment', '--comment', 'allow "web" in', '-m', 'comment', '--comment', 'two', '-j', 'SLUICE-X']);
  });

  it('finds comments and the last jump or goto', () => {
    expect(ruleComments(rule)).toEqual(['allow "web" in', 'two']);
    expect(ruleTarget(rule)).toBe('SLUICE-X');
    expect(ruleTarget('-i sl+ -g SLUICE-FROM-WL')).toBe('SLUICE-FROM-WL');
    expect(ruleTarget('-m comment --comment "-j X"')).toBeUndefined();
  });
});
