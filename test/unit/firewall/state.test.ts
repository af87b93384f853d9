import { DataplaneError } from '../../../src/errors';
import type { Rule } from '../../../src/firewall/rule';
import { normalizeFirewall, sortMembers, type FirewallState } from '../../../src/firewall/state';
import type { Family } from '../../../src/net/ip';

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

describe('normalizeFirewall of an IPv6 state', () => {
  // As `ipset save` printed them after adding the input spellings to inet6 sets (ipset v7.17).
  it('spells members as ipset save does for inet6 sets', () => {
    const normal = normalizeFirewall(
      {
        ...empty,
        ipsets: [
          { name: 'sluice6a', type: 'hash:ip', members: ['fd00:96::2', 'FD00:0096:0:0::3', 'fd00:96::4/128'] },
          { name: 'sluice6n', type: 'hash:net', members: ['fd00:96::2/128', 'fd00:96::1234/64', '::/1'] },
          { name: 'sluice6l', type: 'hash:net,iface', members: ['fd00:96::2,slv0123456789a', 'fd00:97::/64,slv0123456789b', 'fd00:98::7/128,slv+'] },
          { name: 'sluice6p', type: 'hash:ip,port', members: ['fd00:96::2/128,tcp:2379', 'fd00:96::3,udp:053'] },
        ],
      },
      6,
    );
    expect([...normal.sets.get('sluice6a')!.members]).toEqual(['fd00:96::2', 'fd00:96::3', 'fd00:96::4']);
    expect([...normal.sets.get('sluice6n')!.members]).toEqual(['fd00:96::2', 'fd00:96::/64', '::/1']);
    expect([...normal.sets.get('sluice6l')!.members]).toEqual(['fd00:96::2,slv0123456789a', 'fd00:97::/64,slv0123456789b', 'fd00:98::7,slv+']);
    expect([...normal.sets.get('sluice6p')!.members]).toEqual(['fd00:96::2,tcp:2379', 'fd00:96::3,udp:53']);
  });

  const rule = (match: Rule['matches'][number], action: Rule['action'] = { kind: 'ACCEPT' }): FirewallState => ({
    ...empty,
    ipsets: [{ name: 'sluice6a', type: 'hash:ip', members: [] }],
    nat: [{ name: 'SLUICE-DNAT', rules: [{ comment: 'r', matches: [match], action }] }],
  });

  it('takes IPv6 addresses in rules and sets named sluice6…', () => {
    const state = rule({ kind: 'destination', address: 'fd00:96::2' }, { kind: 'DNAT', address: 'fd00:96::2', port: 80 });
    expect(() => normalizeFirewall({ ...state, filter: [{ name: 'SLUICE-FORWARD', rules: [{ ...accept, matches: [{ kind: 'set', set: 'sluice6a', sides: 'src' }] }] }] }, 6)).not.toThrow();
  });

  it.each([
    ['an IPv4 address in an IPv6 set', { ...empty, ipsets: [{ name: 'sluice6a', type: 'hash:ip' as const, members: ['10.0.0.1'] }] }, 6, /not an IPv6 address/],
    ['an IPv4 network in an IPv6 set', { ...empty, ipsets: [{ name: 'sluice6n', type: 'hash:net' as const, members: ['10.0.0.0/8'] }] }, 6, /not an IPv6 network/],
    ['an IPv6 address in an IPv4 set', { ...empty, ipsets: [{ name: 'sluice-a', type: 'hash:ip' as const, members: ['fd00::1'] }] }, 4, /not an IPv4 address/],
    ['an IPv4 set name in an IPv6 state', { ...empty, ipsets: [{ name: 'sluice-a', type: 'hash:ip' as const, members: [] }] }, 6, /not Sluice's for IPv6/],
    ['an IPv6 set name in an IPv4 state', { ...empty, ipsets: [{ name: 'sluice6a', type: 'hash:ip' as const, members: [] }] }, 4, /not Sluice's for IPv4/],
    ["IPv6's scratch set", { ...empty, ipsets: [{ name: 'sluice6tmp', type: 'hash:ip' as const, members: [] }] }, 6, /not Sluice's/],
    ['a match on an IPv4 set in an IPv6 state', rule({ kind: 'set', set: 'sluice-a', sides: 'src' }), 6, /matches ipset sluice-a/],
    ['a match on an IPv6 set in an IPv4 state', { ...rule({ kind: 'set', set: 'sluice6b', sides: 'src' }), ipsets: [] }, 4, /matches ipset sluice6b/],
    ['an IPv4 destination in an IPv6 state', rule({ kind: 'destination', address: '10.0.0.1' }), 6, /not an IPv6 address/],
    ['a DNAT to IPv4 in an IPv6 state', rule({ kind: 'protocol', protocol: 'tcp' }, { kind: 'DNAT', address: '10.0.0.1', port: 80 }), 6, /not an IPv6 address and port/],
  ] satisfies [string, FirewallState, Family, RegExp][])('rejects %s', (_what, state, family, message) => {
    expect(() => normalizeFirewall(state, family)).toThrow(DataplaneError);
    expect(() => normalizeFirewall(state, family)).toThrow(message);
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
