/**
 * The resolver on real sockets (loopback): answers over UDP and TCP,
 * forwarding to a stub upstream, SERVFAIL when upstreams fail, dropped junk,
 * per-source rate limiting and bind errors. Containers are 127.0.0.x sources.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { Resolver, type ResolverOptions } from '../../../src/dns/server';
import type { Upstream } from '../../../src/dns/upstreams';
import { ConflictError } from '../../../src/errors';
import type { EndpointRecord, NetworkRecord } from '../../../src/model';
import { frame } from '../../../src/dns/tcp-frames';
import { type StubUpstream, TcpClient, UPSTREAM_ADDRESS, UdpClient, addresses, queryBytes, startUpstream } from './wire';

const lo: NetworkRecord = { key: '127.0.0.0-24', subnet: '127.0.0.0/24', blockSize: 26, gateway: '127.0.0.1', name: 'lonet' };
const other: NetworkRecord = { key: '127.0.1.0-24', subnet: '127.0.1.0/24', blockSize: 26, gateway: '127.0.1.1', name: 'othernet' };

function endpoint(id: string, network: NetworkRecord, address: string, containerName: string, aliases: string[] = []): EndpointRecord {
  return { id, network: network.key, node: 'h1', address, hostIfname: `slv${id}`, containerId: id, containerName, aliases, labels: {}, ports: [] };
}

const CLIENT = '127.0.0.2';
/** Not a sluice endpoint: a container on Docker's bridge, say. */
const STRANGER = '127.0.0.9';
const view = {
  networks: new Map([lo, other].map((n) => [n.key, n])),
  endpoints: new Map(
    [
      endpoint('client', lo, CLIENT, 'client'),
      endpoint('web1', lo, '127.0.0.3', 'web-1', ['web']),
      endpoint('web2', lo, '127.0.0.4', 'web-2', ['web']),
      endpoint('secret', other, '127.0.1.2', 'secret'),
    ].map((e) => [e.id, e]),
  ),
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FAST = { attemptMs: 100, deadlineMs: 400 };

async function resolver(upstreams: Upstream[], extra: Partial<ResolverOptions> = {}): Promise<Resolver> {
  const started = await Resolver.start({ address: '127.0.0.1', port: 0, upstreams, timing: FAST, log: () => undefined, ...extra });
  started.update(view);
  cleanups.push(() => started.close());
  return started;
}

async function upstream(silent = false): Promise<StubUpstream> {
  const stub = await startUpstream(silent);
  cleanups.push(() => stub.close());
  return stub;
}

async function udpFrom(source: string, server: Resolver): Promise<UdpClient> {
  const client = await UdpClient.open(source, server.port);
  cleanups.push(() => client.close());
  return client;
}

async function tcpFrom(source: string, server: Resolver): Promise<TcpClient> {
  const client = await TcpClient.open(source, server.port);
  cleanups.push(() => client.close());
  return client;
}

/** A port nothing listens on (bound, read, released). */
async function deadPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

describe('answers', () => {
  it('resolves sluice names over UDP and TCP, every replica included', async () => {
    const stub = await upstream();
    const server = await resolver([stub.upstream]);
    const udp = await udpFrom(CLIENT, server);
    expect(addresses(await udp.ask('web'))).toEqual(['127.0.0.3', '127.0.0.4']);
    expect(addresses(await udp.ask('WEB-1.lonet'))).toEqual(['127.0.0.3']);
    const tcp = await tcpFrom(CLIENT, server);
    expect(addresses(await tcp.ask('web'))).toEqual(['127.0.0.3', '127.0.0.4']);
    expect(stub.seen).toEqual([]);
  });

  it('answers pipelined TCP queries on one connection', async () => {
    const server = await resolver([]);
    const tcp = await tcpFrom(CLIENT, server);
    tcp.write(Buffer.concat([frame(queryBytes('web-1', 'A', 11)), frame(queryBytes('web-2', 'A', 12))]));
    const replies = [await tcp.next(), await tcp.next()];
    expect(replies.map((r) => `${r?.id} ${addresses(r).join()}`).sort()).toEqual(['11 127.0.0.3', '12 127.0.0.4']);
  });

  it('follows update(): a name added to the view is answered', async () => {
    const server = await resolver([]);
    const udp = await udpFrom(CLIENT, server);
    expect(addresses(await udp.ask('newcomer'))).toEqual([]);
    const added = endpoint('new', lo, '127.0.0.5', 'newcomer');
    server.update({ networks: view.networks, endpoints: new Map([...view.endpoints, [added.id, added]]) });
    expect(addresses(await udp.ask('newcomer'))).toEqual(['127.0.0.5']);
  });
});

describe('forwarding', () => {
  it('forwards other names to the upstream over the transport they came on', async () => {
    const stub = await upstream();
    const server = await resolver([stub.upstream]);
    expect(addresses(await (await udpFrom(CLIENT, server)).ask('example.com'))).toEqual([UPSTREAM_ADDRESS]);
    expect(addresses(await (await tcpFrom(CLIENT, server)).ask('example.org'))).toEqual([UPSTREAM_ADDRESS]);
    expect(stub.seen).toEqual(['udp example.com', 'tcp example.org']);
  });

  it('only forwards for a source that is not a sluice endpoint, sluice names included', async () => {
    const stub = await upstream();
    const server = await resolver([stub.upstream]);
    expect(addresses(await (await udpFrom(STRANGER, server)).ask('web'))).toEqual([UPSTREAM_ADDRESS]);
    expect(stub.seen).toEqual(['udp web']);
  });

  it('never reveals names of a network the asker is not on: they go upstream like any unknown name', async () => {
    const stub = await upstream();
    const server = await resolver([stub.upstream]);
    expect(addresses(await (await udpFrom(CLIENT, server)).ask('secret'))).toEqual([UPSTREAM_ADDRESS]);
    expect(addresses(await (await udpFrom('127.0.1.2', server)).ask('secret'))).toEqual(['127.0.1.2']);
  });

  it.each(['udp', 'tcp'] as const)('answers SERVFAIL over %s when the upstream never answers', async (transport) => {
    const silent = await upstream(true);
    const server = await resolver([silent.upstream]);
    const reply = transport === 'udp' ? await (await udpFrom(CLIENT, server)).ask('example.com') : await (await tcpFrom(CLIENT, server)).ask('example.com');
    expect(reply?.rcode).toBe('SERVFAIL');
    expect(silent.seen).toEqual([`${transport} example.com`]);
  });

  it.each(['udp', 'tcp'] as const)('answers SERVFAIL over %s when nothing listens upstream, without waiting out the deadline', async (transport) => {
    // A refused upstream fails at once: with this deadline, waiting would outlast the test's own timeout.
    const server = await resolver([{ host: '127.0.0.1', port: await deadPort(), family: 4 }], { timing: { attemptMs: 60_000, deadlineMs: 60_000 } });
    const reply = transport === 'udp' ? await (await udpFrom(CLIENT, server)).ask('example.com') : await (await tcpFrom(CLIENT, server)).ask('example.com');
    expect(reply?.rcode).toBe('SERVFAIL');
  });

  it('asks the next upstream when the first cannot even be connected to, and keeps serving', async () => {
    const stub = await upstream();
    // An IPv6 address on an IPv4 socket: connect fails, as it does with no route to the upstream.
    const server = await resolver([{ host: '::1', port: 53, family: 4 }, stub.upstream], { timing: { attemptMs: 60_000, deadlineMs: 60_000 } });
    expect(addresses(await (await udpFrom(CLIENT, server)).ask('example.com'))).toEqual([UPSTREAM_ADDRESS]);
  });

  it('answers SERVFAIL at once when there is no upstream at all', async () => {
    const server = await resolver([], { timing: { attemptMs: 60_000, deadlineMs: 60_000 } });
    expect((await (await udpFrom(CLIENT, server)).ask('example.com')).rcode).toBe('SERVFAIL');
  });

  it('asks the next upstream when the first does not answer', async () => {
    const silent = await upstream(true);
    const stub = await upstream();
    const server = await resolver([silent.upstream, stub.upstream]);
    expect(addresses(await (await udpFrom(CLIENT, server)).ask('example.com'))).toEqual([UPSTREAM_ADDRESS]);
    expect(silent.seen).toEqual(['udp example.com']);
  });
});

describe('robustness', () => {
  it('drops garbage, responses and oversized packets, and keeps serving', async () => {
    const stub = await upstream();
    const server = await resolver([stub.upstream]);
    const udp = await udpFrom(CLIENT, server);
    udp.send(Buffer.from('definitely not dns'));
    udp.send(Buffer.alloc(0));
    udp.send(dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'web', type: 'A' }] }));
    // Well-formed but larger than any real query: six questions of 200-byte names.
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example`;
    udp.send(dnsPacket.encode({ type: 'query', id: 2, questions: Array.from({ length: 6 }, () => ({ name: long, type: 'A' as const })) }));
    udp.send(queryBytes('web', 'A', 3));
    // The first reply to come back is the one for the only well-formed query.
    const reply = await udp.next();
    expect(reply.id).toBe(3);
    expect(addresses(reply)).toEqual(['127.0.0.3', '127.0.0.4']);
    expect(stub.seen).toEqual([]);
  });

  it('closes a TCP connection that announces an oversized query, and serves the next one', async () => {
    const server = await resolver([]);
    const greedy = await tcpFrom(CLIENT, server);
    greedy.write(Buffer.from([0xff, 0xff, 0, 0]));
    expect(await greedy.next()).toBeUndefined();
    expect(greedy.closed).toBe(true);
    expect(addresses(await (await tcpFrom(CLIENT, server)).ask('web-1'))).toEqual(['127.0.0.3']);
  });

  it('sends a UDP reply too large for a datagram truncated, and the whole answer over TCP', async () => {
    const server = await resolver([]);
    const many = Array.from({ length: 60 }, (_, i) => endpoint(`r${i}`, lo, `127.0.0.${i + 100}`, `r-${i}`, ['many']));
    server.update({ networks: view.networks, endpoints: new Map([...view.endpoints, ...many.map((e) => [e.id, e] as const)]) });
    const overUdp = await (await udpFrom(CLIENT, server)).ask('many');
    expect(overUdp.flag_tc).toBe(true);
    expect(addresses(await (await tcpFrom(CLIENT, server)).ask('many'))).toHaveLength(60);
  });

  it('rate-limits a flooding source and keeps answering the others', async () => {
    let now = 0;
    const server = await resolver([], { rateLimit: { perSecond: 1, burst: 3, maxSources: 100 }, now: () => now });
    const flooder = await udpFrom(CLIENT, server);
    for (let id = 1; id <= 10; id++) flooder.send(queryBytes('web-1', 'A', id));
    const neighbour = await udpFrom('127.0.0.3', server);
    expect(addresses(await neighbour.ask('web-2'))).toEqual(['127.0.0.4']);
    now += 1000; // one token back
    flooder.send(queryBytes('web-1', 'A', 11));
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await flooder.next()).id);
    expect(ids).toEqual([1, 2, 3, 11]);
  });
});

describe('binding', () => {
  it('fails with a clear error when the UDP port is taken', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => blocker.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const attempt = Resolver.start({ address: '127.0.0.1', port: blocker.address().port, upstreams: [] });
    await expect(attempt).rejects.toThrow(ConflictError);
    await expect(attempt).rejects.toThrow(`cannot serve DNS on 127.0.0.1:${blocker.address().port}/udp: another process is using it`);
  });

  it('fails with a clear error when the TCP port is taken, leaving the UDP port free', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as net.AddressInfo).port;
    await expect(Resolver.start({ address: '127.0.0.1', port, upstreams: [] })).rejects.toThrow(`127.0.0.1:${port}/tcp: another process is using it`);
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => probe.once('error', reject).bind(port, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('fails with a clear error for an address the host does not have', async () => {
    await expect(Resolver.start({ address: '192.0.2.53', port: 0, upstreams: [] })).rejects.toThrow(/cannot serve DNS on 192\.0\.2\.53:0\/udp/);
  });
});
