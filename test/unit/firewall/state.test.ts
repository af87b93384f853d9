import { DataplaneError } from '../../../src/errors';
import type { Rule } from '../../../src/firewall/rule';
import { normalizeFirewall, sortMembers, type FirewallState } from '../../../src/firewall/state';

const accept: Rule = { comment: 'all', matches: [], action: { kind: 'ACCEPT' } };
const jump = (chain: string): Rule => ({ comment: 'jump', matches: [], action: { kind: 'jump', chain } });

const empty = { ipsets: [], filter: [], nat: [] };

describe('normalizeFirewall', () => {
  it('always has the top-level chains, empty unless given', () => {
    const normal = normalizeFirewall({ ...empty, filter: [{ name: 'SLUICE-FORWARD', rules: [accept] }] });
    expect([...normal.chains.filter]).toEqual([
      ['SLUICE-FORWARD', [accept]],
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
    ['a jump to a missing chain', { ...empty, filter: [{ name: 'SLUICE-FORWARD', rules: [jump('SLUICE-gone')] }] }, /jumps to SLUICE-gone/],
    ['a jump to a name iptables would split', { ...empty, filter: [{ name: 'SLUICE-FORWARD', rules: [jump('ACCEPT -j DROP')] }] }, /jumps to ACCEPT -j DROP/],
    [
      'a match on a missing set',
      { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: [{ ...accept, matches: [{ kind: 'set' as const, set: 'sluice-gone', sides: 'dst' as const }] }] }] },
      /matches ipset sluice-gone/,
    ],
    [
      'an interface name with a blank',
      { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: [{ ...accept, matches: [{ kind: 'in-interface' as const, name: 'sl v' }] }] }] },
      /not an interface name/,
    ],
    [
      'a DNAT to a bad address',
      { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: [{ ...accept, action: { kind: 'DNAT' as const, address: '10.0.0.1"', port: 80 } }] }] },
      /DNAT to/,
    ],
    ...['x"\n-A SLUICE-DNAT -j ACCEPT', 'x\r', 'x\0', 'x"', 'x\\', 'x'.repeat(256)].map(
      (comment): [string, FirewallState, RegExp] => [
        `the comment ${JSON.stringify(comment)}`,
        { ...empty, nat: [{ name: 'SLUICE-DNAT', rules: [{ ...accept, comment }] }] },
        /has a quote, backslash or line break, or is too long/,
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
        filter: [{ name: 'SLUICE-FORWARD', rules: [jump('SLUICE-X'), { ...accept, matches: [{ kind: 'set', set: 'sluice-a', sides: 'src' }] }] }, { name: 'SLUICE-X', rules: [] }],
        nat: [],
      }),
    ).not.toThrow();
  });
});

describe('sortMembers', () => {
  it('orders by address, then prefix, then text, and drops duplicates', () => {
    expect(sortMembers(['10.0.0.10', '10.0.0.2', '10.0.0.0/24', '10.0.0.0/8', '10.0.0.2', '10.0.0.2,slvb', '10.0.0.2,slva'])).toEqual([
      '10.0.0.0/8',
      '10.0.0.0/24',
      '10.0.0.2',
      '10.0.0.2,slva',
      '10.0.0.2,slvb',
      '10.0.0.10',
    ]);
  });
});
