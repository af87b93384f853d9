import { MAX_CHAIN_NAME, MAX_IPSET_NAME, endpointChainName, netSetName, policyChainName, selectorSetName } from '../../../src/policy/names';

describe('kernel object names', () => {
  it('fit the kernel limits and carry the owned prefixes', () => {
    const long = 'x'.repeat(63);
    expect(selectorSetName(`role == '${long}'`)).toMatch(/^sluice-s-[A-Za-z0-9_-]{22}$/);
    expect(selectorSetName('all()')).toHaveLength(MAX_IPSET_NAME);
    expect(netSetName(['10.0.0.0/8'])).toMatch(/^sluice-n-[A-Za-z0-9_-]{22}$/);
    expect(policyChainName('ingress', long)).toMatch(/^SLUICE-pi-[A-Za-z0-9_-]{18}$/);
    expect(policyChainName('egress', long)).toMatch(/^SLUICE-po-[A-Za-z0-9_-]{18}$/);
    expect(policyChainName('egress', long)).toHaveLength(MAX_CHAIN_NAME);
    expect(endpointChainName('to', 'sl0123456789a')).toBe('SLUICE-tw-sl0123456789a');
    expect(endpointChainName('from', 'sl0123456789a')).toBe('SLUICE-fw-sl0123456789a');
    expect(endpointChainName('from', 'x'.repeat(15)).length).toBeLessThanOrEqual(MAX_CHAIN_NAME);
  });

  it('are stable, distinct for different inputs, and ignore the order of a CIDR list', () => {
    expect(selectorSetName("role == 'web'")).toBe(selectorSetName("role == 'web'"));
    expect(selectorSetName("role == 'web'")).not.toBe(selectorSetName("role == 'db'"));
    expect(netSetName(['10.0.0.0/8', '192.0.2.0/24'])).toBe(netSetName(['192.0.2.0/24', '10.0.0.0/8', '10.0.0.0/8']));
    expect(netSetName(['10.0.0.0/8'])).not.toBe(netSetName(['10.0.0.0/9']));
    expect(policyChainName('ingress', 'a')).not.toBe(policyChainName('ingress', 'b'));
  });
});
