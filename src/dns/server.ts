/**
 * The resolver's sockets: DNS over UDP and TCP on one address (the agent's
 * --dns-address, port 53). Each query is rate-limited per source, decided by
 * answer.ts, and either answered or forwarded upstream. Anything malformed is
 * dropped; nothing a client sends can throw out of here.
 *
 * The agent feeds it names with `update(view)`; the index is rebuilt on the
 * first query after a change, so a burst of store events costs one rebuild.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { ConflictError, DataplaneError, errorMessage } from '../errors';
import type { EndpointRecord, NetworkRecord } from '../model';
import { type Decision, type NameIndex, buildNameIndex, decide, decodeQuery, encodeForUdp, serverFailure } from './answer';
import { DEFAULT_FORWARD_TIMING, type ForwardTiming, type Transport, forward } from './forward';
import { DEFAULT_RATE_LIMIT, type RateLimitOptions, RateLimiter } from './rate-limit';
import { FrameReader, frame } from './tcp-frames';
import type { Upstream } from './upstreams';

/** Larger than any real query (a name is at most 255 bytes); bigger packets are dropped unread. */
export const MAX_QUERY_BYTES = 1024;
/** A TCP client that says nothing for this long is disconnected. */
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 256;
/** Tries of an ephemeral port (port 0) whose TCP twin turns out to be taken. */
const EPHEMERAL_ATTEMPTS = 5;

/** What the resolver reads names from: the agent's ClusterView has this shape. */
export interface NameSource {
  readonly networks: ReadonlyMap<string, NetworkRecord>;
  readonly endpoints: ReadonlyMap<string, EndpointRecord>;
}

export interface ResolverOptions {
  address: string;
  /** 53 in production; 0 picks a free port (UDP's, then the same for TCP). */
  port: number;
  upstreams: readonly Upstream[];
  timing?: ForwardTiming;
  rateLimit?: RateLimitOptions;
  /** Forwards in flight at most; queries past that are dropped (the client retries). */
  maxForwards?: number;
  /** ms clock for the rate limiter. */
  now?: () => number;
  random?: () => number;
  log?: (message: string) => void;
}

export class Resolver {
  private source: NameSource | undefined;
  private cached: NameIndex | undefined;
  private forwards = 0;
  private readonly limiter: RateLimiter;
  private readonly tcpClients = new Set<net.Socket>();

  private constructor(
    private readonly options: ResolverOptions,
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
  ) {
    this.limiter = new RateLimiter(options.rateLimit ?? DEFAULT_RATE_LIMIT, options.now ?? Date.now);
    udp.on('message', (bytes, peer) => this.handle(bytes, peer.address, 'udp', (reply) => udp.send(reply, peer.port, peer.address, () => undefined)));
    udp.on('error', (err) => this.log(`udp socket: ${err.message}`));
    tcp.on('connection', (socket) => this.serveTcp(socket));
    tcp.on('error', (err) => this.log(`tcp socket: ${err.message}`));
  }

  /**
   * Binds both sockets; a clear error (and nothing left open) when either cannot be bound. Port 0
   * (tests) picks a free UDP port, whose TCP twin another process may hold: then it picks again.
   */
  static async start(options: ResolverOptions): Promise<Resolver> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Resolver.bindBoth(options);
      } catch (err) {
        if (options.port !== 0 || !(err instanceof ConflictError) || attempt === EPHEMERAL_ATTEMPTS) throw err;
      }
    }
  }

  private static async bindBoth(options: ResolverOptions): Promise<Resolver> {
    const udp = dgram.createSocket('udp4');
    try {
      await bind('udp', options.address, options.port, (done) => udp.bind({ address: options.address, port: options.port, exclusive: true }, done), udp);
    } catch (err) {
      udp.close();
      throw err;
    }
    const port = udp.address().port;
    const tcp = net.createServer();
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    try {
      await bind('tcp', options.address, port, (done) => tcp.listen({ host: options.address, port, exclusive: true }, done), tcp);
    } catch (err) {
      udp.close();
      throw err;
    }
    return new Resolver(options, udp, tcp);
  }

  /** The port both transports listen on. */
  get port(): number {
    return this.udp.address().port;
  }

  /** Takes the current names; call after every change of the view. */
  update(source: NameSource): void {
    this.source = source;
    this.cached = undefined;
  }

  async close(): Promise<void> {
    for (const socket of this.tcpClients) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  private index(): NameIndex {
    this.cached ??= buildNameIndex(this.source?.networks.values() ?? [], this.source?.endpoints.values() ?? []);
    return this.cached;
  }

  private serveTcp(socket: net.Socket): void {
    this.tcpClients.add(socket);
    const reader = new FrameReader();
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.tcpClients.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      for (const query of reader.push(chunk)) {
        this.handle(query, socket.remoteAddress ?? '', 'tcp', (reply) => {
          if (!socket.destroyed) socket.write(frame(reply));
        });
      }
      // Announcing an oversized query ends the connection before its bytes are buffered.
      if ((reader.announced ?? 0) > MAX_QUERY_BYTES) socket.destroy();
    });
  }

  private handle(bytes: Buffer, source: string, transport: Transport, send: (reply: Buffer) => void): void {
    if (bytes.length > MAX_QUERY_BYTES || !this.limiter.take(source)) return;
    const query = decodeQuery(bytes);
    if (!query) return;
    let decision: Decision;
    try {
      decision = decide(this.index(), source, query, this.options.random);
      if (decision.kind === 'reply') send(transport === 'udp' ? encodeForUdp(decision.packet) : dnsPacket.encode(decision.packet));
    } catch (err) {
      // A query the codec decodes but cannot answer (odd names): dropped, like garbage.
      this.log(`dropped a query from ${source}: ${errorMessage(err)}`);
      return;
    }
    if (decision.kind === 'reply') return;
    if (this.forwards >= (this.options.maxForwards ?? 512)) return;
    this.forwards++;
    forward(bytes, transport, this.options.upstreams, this.options.timing ?? DEFAULT_FORWARD_TIMING)
      .then((answer) => send(answer ?? dnsPacket.encode(serverFailure(query))))
      .catch((err: unknown) => this.log(`forwarding: ${errorMessage(err)}`))
      .finally(() => this.forwards--);
  }

  private log(message: string): void {
    (this.options.log ?? console.error)(`sluice dns: ${message}`);
  }
}

function bind(
  transport: Transport,
  address: string,
  port: number,
  listen: (done: () => void) => void,
  emitter: dgram.Socket | net.Server,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      const where = `${address}:${port}/${transport}`;
      reject(err.code === 'EADDRINUSE'
        ? new ConflictError(`cannot serve DNS on ${where}: another process is using it`)
        : new DataplaneError(`cannot serve DNS on ${where}: ${err.message}`));
    };
    emitter.once('error', fail);
    listen(() => {
      emitter.off('error', fail);
      resolve();
    });
  });
}
