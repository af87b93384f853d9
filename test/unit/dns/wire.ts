/**
 * Real sockets on loopback for the resolver tests: a stub upstream server
 * (dns-packet over UDP and TCP on one port) and clients that ask from a chosen
 * 127.0.0.x source, as a container asks from its own address.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet, RecordType, StringAnswer } from 'dns-packet';
import { FrameReader, frame } from '../../../src/dns/tcp-frames';
import type { Upstream } from '../../../src/dns/upstreams';

export type Reply = DecodedPacket & { rcode: string };

/** What the stub upstream answers for every A question. */
export const UPSTREAM_ADDRESS = '192.0.2.99';

export interface StubUpstream {
  upstream: Upstream;
  /** Questions it received, as "transport name". */
  seen: string[];
  close(): Promise<void>;
}

/** A stub upstream; `silent` makes one that takes queries and never answers. */
export async function startUpstream(silent = false): Promise<StubUpstream> {
  const seen: string[] = [];
  const answer = (bytes: Buffer, transport: string): Buffer | undefined => {
    const query = dnsPacket.decode(bytes);
    const question = query.questions![0]!;
    seen.push(`${transport} ${question.name}`);
    if (silent) return undefined;
    return dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: query.questions,
      answers: [{ type: 'A', name: question.name, ttl: 300, data: UPSTREAM_ADDRESS }],
    });
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (bytes, peer) => {
    const reply = answer(bytes, 'udp');
    if (reply) udp.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const port = udp.address().port;
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    const reader = new FrameReader();
    socket.on('data', (chunk) => {
      for (const message of reader.push(chunk)) {
        const reply = answer(message, 'tcp');
        if (reply) socket.write(frame(reply));
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', resolve));
  return {
    upstream: { host: '127.0.0.1', port, family: 4 },
    seen,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

let nextId = 1;

export function queryBytes(name: string, type: RecordType = 'A', id = nextId++): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] } satisfies Packet);
}

/** A UDP client bound to `source`: sends raw datagrams and hands out replies in arrival order. */
export class UdpClient {
  private readonly socket = dgram.createSocket('udp4');
  private readonly replies: Reply[] = [];
  private waiting: ((reply: Reply) => void) | undefined;

  private constructor(private readonly port: number) {
    this.socket.on('message', (bytes) => {
      const reply = dnsPacket.decode(bytes) as Reply;
      if (this.waiting) this.waiting(reply);
      else this.replies.push(reply);
    });
  }

  static async open(source: string, port: number): Promise<UdpClient> {
    const client = new UdpClient(port);
    await new Promise<void>((resolve) => client.socket.bind(0, source, resolve));
    return client;
  }

  send(bytes: Buffer): void {
    this.socket.send(bytes, this.port, '127.0.0.1');
  }

  next(): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      this.waiting = (reply) => {
        this.waiting = undefined;
        resolve(reply);
      };
    });
  }

  async ask(name: string, type: RecordType = 'A'): Promise<Reply> {
    this.send(queryBytes(name, type));
    return this.next();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A TCP connection from `source`: writes raw bytes, reads whole replies. */
export class TcpClient {
  private readonly reader = new FrameReader();
  private readonly replies: Reply[] = [];
  private waiting: ((reply: Reply | undefined) => void) | undefined;
  closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      for (const message of this.reader.push(chunk)) {
        const reply = dnsPacket.decode(message) as Reply;
        if (this.waiting) this.waiting(reply);
        else this.replies.push(reply);
      }
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.(undefined);
    });
    socket.on('error', () => undefined);
  }

  static async open(source: string, port: number): Promise<TcpClient> {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: source });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new TcpClient(socket);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next reply, or undefined once the server closed the connection. */
  next(): Promise<Reply | undefined> {
    const queued = this.replies.shift();
    if (queued || this.closed) return Promise.resolve(queued);
    return new Promise((resolve) => {
      this.waiting = (reply) => {
        this.waiting = undefined;
        resolve(reply);
      };
    });
  }

  async ask(name: string, type: RecordType = 'A'): Promise<Reply | undefined> {
    this.write(frame(queryBytes(name, type)));
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The A records of a reply, sorted (replicas come shuffled). */
export function addresses(reply: Reply | undefined): string[] {
  return ((reply?.answers ?? []) as StringAnswer[]).map((a) => a.data).sort();
}
