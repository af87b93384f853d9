/**
 * Forwards a query's bytes, untouched, to the upstream servers and returns
 * the first answer, or undefined when none came before the deadline (the
 * asker then gets SERVFAIL: never a hang). The first upstream is asked at
 * once; each `attemptMs` without an answer, or at once when one fails, the
 * next is asked too, and the first answer wins.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { FrameReader, frame } from './tcp-frames';
import type { Upstream } from './upstreams';

export type Transport = 'udp' | 'tcp';

export interface ForwardTiming {
  /** ms before the next upstream is asked as well. */
  attemptMs: number;
  /** ms after which the query is given up. */
  deadlineMs: number;
}

export const DEFAULT_FORWARD_TIMING: ForwardTiming = { attemptMs: 1000, deadlineMs: 3000 };

export function forward(query: Buffer, transport: Transport, upstreams: readonly Upstream[], timing: ForwardTiming): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const controller = new AbortController();
    let next = 0;
    let pending = 0;
    let done = false;
    let stagger: NodeJS.Timeout | undefined;
    const finish = (answer: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(stagger);
      controller.abort();
      resolve(answer);
    };
    const deadline = setTimeout(() => finish(undefined), timing.deadlineMs);
    const askNext = (): void => {
      clearTimeout(stagger);
      const upstream = upstreams[next++];
      if (done || !upstream) {
        if (pending === 0) finish(undefined);
        return;
      }
      pending++;
      stagger = setTimeout(askNext, timing.attemptMs);
      const exchange = transport === 'udp' ? exchangeUdp : exchangeTcp;
      exchange(upstream, query, controller.signal).then(finish, () => {
        pending--;
        askNext();
      });
    };
    askNext();
  });
}

/** An answer belongs to the query when it carries the query's ID. */
function answers(reply: Buffer, query: Buffer): boolean {
  return reply.length >= 12 && reply.readUInt16BE(0) === query.readUInt16BE(0);
}

/** A settle function that closes the socket once, whichever of answer, failure or abort comes first. */
function settler(signal: AbortSignal, close: () => void, reject: (err: Error) => void): (outcome: () => void) => void {
  let settled = false;
  const settle = (outcome: () => void): void => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', abort);
    close();
    outcome();
  };
  const abort = (): void => settle(() => reject(new Error('aborted')));
  signal.addEventListener('abort', abort, { once: true });
  return settle;
}

/** One fresh socket per query: a random source port, and replies from anyone but the upstream never arrive (connected). */
function exchangeUdp(upstream: Upstream, query: Buffer, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(upstream.family === 6 ? 'udp6' : 'udp4');
    let open = true;
    const settle = settler(signal, () => {
      open = false;
      socket.close();
    }, reject);
    // ICMP "port unreachable" arrives as ECONNREFUSED: that upstream is down, ask the next.
    socket.once('error', (err) => settle(() => reject(err)));
    socket.on('message', (reply) => {
      if (answers(reply, query)) settle(() => resolve(reply));
    });
    // A failed connect (no route to the upstream: ENETUNREACH) comes to this callback, not as 'error'.
    // An abort may close the socket before it is connected.
    socket.connect(upstream.port, upstream.host, (err?: Error) => {
      if (err) settle(() => reject(err));
      else if (open) socket.send(query);
    });
  });
}

function exchangeTcp(upstream: Upstream, query: Buffer, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: upstream.host, port: upstream.port, family: upstream.family });
    const reader = new FrameReader();
    const settle = settler(signal, () => socket.destroy(), reject);
    socket.once('error', (err) => settle(() => reject(err)));
    socket.once('close', () => settle(() => reject(new Error(`upstream closed the connection`))));
    socket.on('data', (chunk) => {
      const reply = reader.push(chunk).find((message) => answers(message, query));
      if (reply) settle(() => resolve(reply));
    });
    socket.on('connect', () => socket.write(frame(query)));
  });
}
