import { ipv6Change, ipv6SetName, ipv6State } from '../../../src/firewall/family';
import { LOCAL_SET, MAX_IPSET_NAME, selectorSetName } from '../../../src/firewall/names';
import type { FirewallState } from '../../../src/firewall/state';

describe('IPv6 set names', () => {
  it('moves every sluice set into the IPv6 names, as long as the IPv4 ones, and leaves chains named as they are', () => {
    const selector = selectorSetName("role == 'web'");
    expect(selector.length).toBe(MAX_IPSET_NAME);
    expect(ipv6SetName(selector)).toHaveLength(MAX_IPSET_NAME);
    expect(ipv6SetName(LOCAL_SET)).toBe('sluice6local');
    const state: FirewallState = {
      ipsets: [{ name: LOCAL_SET, type: 'hash:net,iface', members: ['fd00:96::2,slv0123456789a'] }],
      filter: [
        {
          name: 'SLUICE-FROM-WL',
          rules: [{ comment: 'c', matches: [{ kind: 'set', set: LOCAL_SET, sides: 'src,src', negated: true }, { kind: 'protocol', protocol: 'tcp' }], action: { kind: 'DROP' } }],
        },
      ],
      nat: [],
    };
    const moved = ipv6State(state);
    expect(moved.ipsets.map((s) => s.name)).toEqual(['sluice6local']);
    expect(moved.filter[0]).toEqual({ ...state.filter[0], rules: [{ ...state.filter[0]!.rules[0], matches: [{ kind: 'set', set: 'sluice6local', sides: 'src,src', negated: true }, { kind: 'protocol', protocol: 'tcp' }] }] });
    const change = ipv6Change({ createdSets: [], members: [{ name: LOCAL_SET, add: ['fd00:96::3,slv0123456789b'], remove: [] }], chains: [], removedChains: [], destroyedSets: [selector] });
    expect([change.members[0]!.name, change.destroyedSets[0]]).toEqual(['sluice6local', ipv6SetName(selector)]);
  });
});
