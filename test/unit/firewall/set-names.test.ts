import {
  EGRESS_GOVERNED_SET,
  INGRESS_GOVERNED_SET,
  LOCAL_SET,
  MAX_CHAIN_NAME,
  MAX_IPSET_NAME,
  POOLS_SET,
  netSetName,
  policyChainName,
  selectorSetName,
  targetSetName,
} from '../../../src/firewall/names';

describe('kernel object names', () => {
  it('fit the kernel limits and carry the owned prefixes', () => {
    const long = 'x'.repeat(63);
    expect(selectorSetName(`role == '${long}'`)).toMatch(/^sluice-s-[A-Za-z0-9_-]{22}$/);
    expect(selectorSetName('all()')).toHaveLength(MAX_IPSET_NAME);
    expect(netSetName(['10.0.0.0/8'])).toMatch(/^sluice-n-[A-Za-z0-9_-]{22}$/);
    expect(policyChainName('ingress', long)).toMatch(/^SLUICE-pi-[A-Za-z0-9_-]{18}$/);
    expect(policyChainName('egress', long)).toMatch(/^SLUICE-po-[A-Za-z0-9_-]{18}$/);
    expect(policyChainName('egress', long)).toHaveLength(MAX_CHAIN_NAME);
    expect(targetSetName(`role == '${long}'`, 'x'.repeat(63))).toMatch(/^sluice-t-[A-Za-z0-9_-]{22}$/);
    for (const fixed of [POOLS_SET, LOCAL_SET, INGRESS_GOVERNED_SET, EGRESS_GOVERNED_SET]) {
      expect(fixed).toMatch(/^sluice-/);
      expect(fixed.length).toBeLessThanOrEqual(MAX_IPSET_NAME);
    }
  });

  it('are stable, distinct for different inputs, and ignore the order of a CIDR list', () => {
    expect(selectorSetName("role == 'web'")).toBe(selectorSetName("role == 'web'"));
    expect(selectorSetName("role == 'web'")).not.toBe(selectorSetName("role == 'db'"));
    expect(netSetName(['10.0.0.0/8', '192.0.2.0/24'])).toBe(netSetName(['192.0.2.0/24', '10.0.0.0/8', '10.0.0.0/8']));
    expect(netSetName(['10.0.0.0/8'])).not.toBe(netSetName(['10.0.0.0/9']));
    expect(policyChainName('ingress', 'a')).not.toBe(policyChainName('ingress', 'b'));
    expect(targetSetName("role == 'web'", 'appnet')).toBe(targetSetName("role == 'web'", 'appnet'));
    expect(targetSetName("role == 'web'", 'appnet')).not.toBe(targetSetName("role == 'web'", undefined));
    expect(targetSetName("role == 'web'", 'appnet')).not.toBe(targetSetName("role == 'db'", 'appnet'));
  });
});
