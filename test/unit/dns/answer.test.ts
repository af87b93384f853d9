/**
 * The resolver's answers, as a container would see them: which names it
 * resolves, to what, and which it must never learn.
 */
import * as dnsPacket from 'dns-packet';
import type { Packet, StringAnswer } from 'dns-packet';
import { NAME_TTL, type NameIndex, UDP_REPLY_LIMIT, buildNameIndex, decide, decodeQuery, encodeForUdp, reverseAddress, serverFailure } from '../../../src/dns/answer';
import type { EndpointRecord } from '../../../src/model';
import {
  apiOnApp, apiOnAppDual, apiOnDb, appnet, client, db, dbDual, dualEndpoints, dualNetworks, endpoints, networks, query, web1, web2,
} from './fixtures';

const index = buildNameIndex(networks, endpoints);

/** The reply's rcode and answer data, as `dig` would summarize them. */
function ask(
  asker: EndpointRecord | string,
  name: string,
  type: Parameters<typeof query>[1] = 'A',
  from: NameIndex = index,
): { rcode: string; data: string[] } | 'forward' {
  const decision = decide(from, typeof asker === 'string' ? asker : asker.address, query(name, type));
  if (decision.kind === 'forward') return 'forward';
  const decoded = dnsPacket.decode(dnsPacket.encode(decision.packet)) as dnsPacket.DecodedPacket & { rcode: string };
  return { rcode: decoded.rcode, data: (decoded.answers as StringAnswer[]).map((a) => a.data) };
}

/** The reply packet, for checks on more than the data. */
function replyFor(asker: EndpointRecord, name: string, random?: () => number): Packet {
  const decision = decide(index, asker.address, query(name), random);
  if (decision.kind === 'forward') throw new Error(`expected a reply for ${name}`);
  return decision.packet;
}

describe('names on the asker\'s networks', () => {
  it('resolves a container name, an alias and NAME.NETWORK', () => {
    expect(ask(client, 'api')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
    expect(ask(client, 'backend')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
    expect(ask(client, 'api.appnet')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
    expect(ask(client, 'backend.appnet')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
  });

  it('ignores case in the name and in the network name, and answers in the case asked', () => {
    expect(ask(client, 'API.AppNet')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
    expect(ask(db, 'postgres.dbnet')).toEqual({ rcode: 'NOERROR', data: ['10.97.0.2'] });
    const reply = replyFor(client, 'WeB');
    expect(reply.answers?.map((a) => a.name)).toEqual(['WeB', 'WeB']);
  });

  it('gives every replica\'s address for a shared alias, across hosts, each once', () => {
    const answer = ask(client, 'web');
    expect(answer).toEqual({ rcode: 'NOERROR', data: expect.arrayContaining(['10.96.0.3', '10.96.0.66']) });
    expect(answer !== 'forward' && answer.data).toHaveLength(2);
  });

  it('shuffles the replicas\' order from one reply to the next', () => {
    const order = (random: () => number): string[] => (replyFor(client, 'web', random).answers as StringAnswer[]).map((a) => a.data);
    expect(order(() => 0)).not.toEqual(order(() => 0.99));
  });

  it('answers with a short TTL, authoritatively, echoing the query\'s ID and RD bit', () => {
    const reply = replyFor(client, 'api');
    expect(reply.answers?.[0]).toMatchObject({ type: 'A', ttl: NAME_TTL });
    expect(reply.id).toBe(4242);
    expect((reply.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER).toBeTruthy();
    expect((reply.flags ?? 0) & dnsPacket.RECURSION_DESIRED).toBeTruthy();
  });

  it('answers AAAA and other types of a known name with no data, not NXDOMAIN', () => {
    expect(ask(client, 'api', 'AAAA')).toEqual({ rcode: 'NOERROR', data: [] });
    expect(ask(client, 'web', 'MX')).toEqual({ rcode: 'NOERROR', data: [] });
    expect(ask(client, 'api', 'ANY')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
  });

  it('lets a container on two networks see the names of both, each name once', () => {
    expect(ask(apiOnApp, 'postgres')).toEqual({ rcode: 'NOERROR', data: ['10.97.0.2'] });
    expect(ask(apiOnDb, 'web')).toEqual({ rcode: 'NOERROR', data: expect.arrayContaining(['10.96.0.3', '10.96.0.66']) });
    // "api" is on both networks: both of its addresses.
    expect(ask(apiOnDb, 'api')).toEqual({ rcode: 'NOERROR', data: expect.arrayContaining(['10.96.0.4', '10.97.0.3']) });
  });
});

describe('names on other networks', () => {
  it('are never revealed: a name on dbnet is forwarded like any unknown name', () => {
    expect(ask(db, 'postgres')).toEqual({ rcode: 'NOERROR', data: ['10.97.0.2'] });
    expect(ask(client, 'postgres')).toBe('forward');
    expect(ask(client, 'db')).toBe('forward');
    expect(ask(client, 'postgres.dbnet')).toBe('forward');
    expect(ask(client, 'example.com')).toBe('forward');
  });

  it('NAME.NETWORK for a network the asker is on but a name not on it is NXDOMAIN', () => {
    expect(ask(client, 'nobody.appnet')).toEqual({ rcode: 'NXDOMAIN', data: [] });
    expect(ask(client, 'postgres.appnet')).toEqual({ rcode: 'NXDOMAIN', data: [] });
  });
});

describe('askers only on --internal networks', () => {
  const internalIndex = buildNameIndex([{ ...appnet, settings: { internal: true, auxAddresses: {} } }], [client, apiOnApp]);
  const askInternal = (name: string, type: Parameters<typeof query>[1] = 'A') => {
    const decision = decide(internalIndex, client.address, query(name, type));
    return decision.kind === 'forward' ? 'forward' : (dnsPacket.decode(dnsPacket.encode(decision.packet)) as dnsPacket.DecodedPacket & { rcode: string }).rcode;
  };

  it('resolve the names of their network, and are refused names outside the cluster (no way out)', () => {
    expect(askInternal('api')).toBe('NOERROR');
    expect(askInternal('example.com')).toBe('REFUSED');
    expect(askInternal('4.3.2.1.in-addr.arpa', 'PTR')).toBe('REFUSED');
  });

  it('still forward when the container is also on a network with a way out', () => {
    const both = buildNameIndex([{ ...appnet, settings: { internal: true, auxAddresses: {} } }, ...networks.filter((n) => n !== appnet)], endpoints);
    expect(decide(both, apiOnDb.address, query('example.com')).kind).toBe('forward');
  });
});

describe('reverse lookups (PTR)', () => {
  it('give the container name of a visible sluice address', () => {
    expect(ask(client, '66.0.96.10.in-addr.arpa', 'PTR')).toEqual({ rcode: 'NOERROR', data: ['proj-web-2'] });
    expect(ask(apiOnApp, '2.0.97.10.in-addr.arpa', 'PTR')).toEqual({ rcode: 'NOERROR', data: ['Postgres'] });
  });

  it('are NXDOMAIN for a sluice address not visible or not in use, and forwarded outside sluice subnets', () => {
    expect(ask(client, '2.0.97.10.in-addr.arpa', 'PTR')).toEqual({ rcode: 'NXDOMAIN', data: [] });
    expect(ask(client, '200.0.96.10.in-addr.arpa', 'PTR')).toEqual({ rcode: 'NXDOMAIN', data: [] });
    expect(ask(client, '8.8.8.8.in-addr.arpa', 'PTR')).toBe('forward');
  });

  it('reads only well-formed IPv4 reverse names', () => {
    expect(reverseAddress('4.3.2.1.IN-ADDR.ARPA')).toBe('1.2.3.4');
    expect(reverseAddress('300.3.2.1.in-addr.arpa')).toBeUndefined();
    expect(reverseAddress('3.2.1.in-addr.arpa')).toBeUndefined();
  });
});

describe('dual-stack names (endpoints with an IPv6 address)', () => {
  const dual = buildNameIndex(dualNetworks, dualEndpoints);
  const ask6 = (asker: EndpointRecord | string, name: string, type: Parameters<typeof query>[1] = 'AAAA') => ask(asker, name, type, dual);

  it('answers AAAA with the IPv6 address for the same names as A: container name, alias, NAME.NETWORK', () => {
    for (const name of ['api', 'backend', 'API.AppNet', 'backend.appnet']) {
      expect(ask6(client, name)).toEqual({ rcode: 'NOERROR', data: ['fd00:96::4'] });
      expect(ask6(client, name, 'A')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.4'] });
    }
  });

  it('gives every replica\'s IPv6 address for a shared alias, and both families for ANY', () => {
    const replicas = ask6(client, 'web');
    expect(replicas).toEqual({ rcode: 'NOERROR', data: expect.arrayContaining(['fd00:96::3', 'fd00:96::42']) });
    expect(replicas !== 'forward' && replicas.data).toHaveLength(2);
    const both = ask6(client, 'api', 'ANY');
    expect(both !== 'forward' && [...both.data].sort()).toEqual(['10.96.0.4', 'fd00:96::4']);
  });

  it('answers AAAA of an IPv4-only name with no data, not NXDOMAIN', () => {
    expect(ask6(apiOnAppDual, 'client')).toEqual({ rcode: 'NOERROR', data: [] });
    expect(ask6(apiOnAppDual, 'client', 'A')).toEqual({ rcode: 'NOERROR', data: ['10.96.0.2'] });
  });

  it('never reveals an IPv6 address on a network the asker is not on', () => {
    expect(ask6(dbDual, 'postgres')).toEqual({ rcode: 'NOERROR', data: ['fd00:97::2'] });
    expect(ask6(client, 'postgres')).toBe('forward');
    expect(ask6(client, 'postgres.dbnet')).toBe('forward');
    expect(ask6(client, 'postgres.appnet')).toEqual({ rcode: 'NXDOMAIN', data: [] });
  });

  it('knows an asker by its IPv6 address too: the same networks as by its IPv4 one', () => {
    expect(ask6('fd00:96::4', 'postgres')).toEqual({ rcode: 'NOERROR', data: ['fd00:97::2'] });
    expect(ask6('fd00:96::3', 'postgres')).toBe('forward');
    expect(ask6('fd00:96::99', 'api')).toBe('forward');
  });

  it('answers PTR in ip6.arpa for a visible address, NXDOMAIN inside sluice pools, and forwards the rest', () => {
    // The reverse name of an address written out as 32 hex digits (fd00:96::42 = fd000096…0042).
    const ptr = (hex: string): string => `${[...hex].reverse().join('.')}.ip6.arpa`;
    expect(ask6(client, ptr('fd000096000000000000000000000042'), 'PTR')).toEqual({ rcode: 'NOERROR', data: ['proj-web-2'] });
    expect(ask6(apiOnAppDual, ptr('fd000097000000000000000000000002'), 'PTR')).toEqual({ rcode: 'NOERROR', data: ['Postgres'] });
    expect(ask6(client, ptr('fd000097000000000000000000000002'), 'PTR')).toEqual({ rcode: 'NXDOMAIN', data: [] });
    expect(ask6(client, ptr('fd000096000000000000000000000099'), 'PTR')).toEqual({ rcode: 'NXDOMAIN', data: [] });
    expect(ask6(client, ptr('20014860486000000000000000008888'), 'PTR')).toBe('forward');
  });

  it('reads only well-formed IPv6 reverse names, into the canonical text the store keeps', () => {
    const nibbles = '2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f';
    expect(reverseAddress(`${nibbles}.IP6.ARPA`)).toBe('fd00:96::42');
    expect(reverseAddress(`${nibbles.slice(2)}.ip6.arpa`)).toBeUndefined();
    expect(reverseAddress(`g.${nibbles.slice(2)}.ip6.arpa`)).toBeUndefined();
    expect(reverseAddress(`42.${nibbles.slice(2)}.ip6.arpa`)).toBeUndefined();
  });
});

describe('askers that are not sluice endpoints', () => {
  it('get everything forwarded, sluice names included', () => {
    expect(ask('172.17.0.2', 'api')).toBe('forward');
    expect(ask('172.17.0.2', '4.0.96.10.in-addr.arpa', 'PTR')).toBe('forward');
    expect(ask(client, 'api')).not.toBe('forward');
  });

  it('are everyone before the first view: nothing is known yet', () => {
    expect(decide(buildNameIndex([], []), client.address, query('api')).kind).toBe('forward');
  });
});

describe('queries that are not plain lookups', () => {
  it('forwards other classes and opcodes', () => {
    const chaos = dnsPacket.decode(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'api', type: 'TXT', class: 'CH' }] }));
    expect(decide(index, client.address, chaos).kind).toBe('forward');
    const status = dnsPacket.decode(dnsPacket.encode({ type: 'query', id: 1, flags: 2 << 11, questions: [{ name: 'api', type: 'A' }] }));
    expect(decide(index, client.address, status).kind).toBe('forward');
    expect(decide(index, client.address, query('api')).kind).toBe('reply');
  });
});

describe('the index', () => {
  it('follows the records it is built from: a removed replica is no longer answered', () => {
    const smaller = buildNameIndex(networks, endpoints.filter((e) => e !== web2));
    const decision = decide(smaller, client.address, query('web'));
    expect(decision.kind === 'reply' && (decision.packet.answers as StringAnswer[]).map((a) => a.data)).toEqual([web1.address]);
  });

  it('needs the network\'s name for NAME.NETWORK, and still answers plain names without it', () => {
    const unnamed = buildNameIndex([{ ...appnet, name: undefined }], [client, apiOnApp]);
    expect(decide(unnamed, client.address, query('api.appnet')).kind).toBe('forward');
    expect(decide(unnamed, client.address, query('api')).kind).toBe('reply');
  });
});

describe('wire helpers', () => {
  it('drops what is not a query: garbage, a response, trailing bytes', () => {
    const good = dnsPacket.encode({ type: 'query', id: 7, questions: [{ name: 'api', type: 'A' }] });
    expect(decodeQuery(good)).toBeDefined();
    expect(decodeQuery(Buffer.from('not dns'))).toBeUndefined();
    expect(decodeQuery(Buffer.concat([good, Buffer.from([0])]))).toBeUndefined();
    expect(decodeQuery(dnsPacket.encode({ type: 'response', id: 7, questions: [{ name: 'api', type: 'A' }] }))).toBeUndefined();
    // A question count the packet does not hold.
    const lying = Buffer.from(good);
    lying.writeUInt16BE(5, 4);
    expect(decodeQuery(lying)).toBeUndefined();
  });

  it('truncates a UDP reply that does not fit, so the client asks over TCP', () => {
    const many: EndpointRecord[] = Array.from({ length: 60 }, (_, i) => ({ ...web1, id: `w${i}`, address: `10.96.1.${i + 1}`, containerId: `w${i}` }));
    const big = decide(buildNameIndex(networks, [client, ...many]), client.address, query('web'));
    if (big.kind !== 'reply') throw new Error('expected a reply');
    expect(dnsPacket.encode(big.packet).length).toBeGreaterThan(UDP_REPLY_LIMIT);
    const sent = dnsPacket.decode(encodeForUdp(big.packet));
    expect(sent.flag_tc).toBe(true);
    expect(sent.answers).toEqual([]);
    const small = dnsPacket.decode(encodeForUdp(replyFor(client, 'web')));
    expect(small.flag_tc).toBe(false);
    expect(small.answers).toHaveLength(2);
  });

  it('builds a SERVFAIL for the query it answers', () => {
    const failed = dnsPacket.decode(dnsPacket.encode(serverFailure(query('example.com')))) as dnsPacket.DecodedPacket & { rcode: string };
    expect(failed).toMatchObject({ id: 4242, rcode: 'SERVFAIL', flag_qr: true, questions: [{ name: 'example.com', type: 'A' }] });
  });
});
