/** --dns-upstream and resolv.conf: where forwarded queries go. */
import { BadRequestError } from '../../../src/errors';
import { formatUpstream, parseUpstreams, resolvConfUpstreams } from '../../../src/dns/upstreams';

const DNS = '169.254.53.53';

describe('parseUpstreams', () => {
  it('reads IPv4 and IPv6 servers, with or without a port', () => {
    expect(parseUpstreams('192.0.2.1, 192.0.2.2:5353,[2001:db8::1]:53,2001:db8::2', DNS).map(formatUpstream)).toEqual([
      '192.0.2.1:53',
      '192.0.2.2:5353',
      '[2001:db8::1]:53',
      '[2001:db8::2]:53',
    ]);
  });

  it.each(['dns.example', '192.0.2.1:0', '192.0.2.1:70000', '192.0.2.1:53:53', '1.2.3', '[192.0.2.1]:53', '', ' , '])(
    'refuses %j with a clear error',
    (text) => {
      expect(() => parseUpstreams(text, DNS)).toThrow(BadRequestError);
      expect(() => parseUpstreams(text, DNS)).toThrow(/--dns-upstream/);
    },
  );

  it('refuses the resolver\'s own address, which would loop', () => {
    expect(() => parseUpstreams(`192.0.2.1,${DNS}`, DNS)).toThrow(/own address/);
    expect(parseUpstreams('192.0.2.1', DNS)).toHaveLength(1);
  });
});

describe('resolvConfUpstreams', () => {
  it('takes the nameserver lines in order, skipping comments, other keywords, junk and the resolver itself', () => {
    const text = [
      '# generated',
      'search example.internal',
      'nameserver 127.0.0.53',
      `nameserver ${DNS}`,
      '; nameserver 192.0.2.9',
      '  nameserver   fe80::1%eth0  ',
      'nameserver not-an-address',
      'options edns0 trust-ad',
    ].join('\n');
    expect(resolvConfUpstreams(text, DNS).map(formatUpstream)).toEqual(['127.0.0.53:53', '[fe80::1%eth0]:53']);
  });

  it('is empty when the file names no other server', () => {
    expect(resolvConfUpstreams(`nameserver ${DNS}\n`, DNS)).toEqual([]);
  });
});
