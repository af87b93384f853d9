// Resolver throughput and latency with 5,000 endpoints known: the resolver runs on a thread of
// its own; 100 clients (endpoint addresses on loopback) send A, AAAA and PTR questions at a
// fixed total rate above the target for a few seconds, and every reply's round trip is timed. No lab needed.
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as dnsPacket from 'dns-packet';
import type { EndpointRecord, NetworkRecord } from '../../src/model';
import { sleep } from '../proc';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const ENDPOINTS = 5000;
const NETWORKS = 5;
const CLIENTS = 100;
/** Offered: 20% above the target, so meeting the target shows headroom, not just keeping up. */
const RATE = 12_000;
const TARGET = 10_000;
const SECONDS = 5;
const TICK_MS = 5;

/** 5 networks of 1,000 endpoints on loopback (127.N.0.0/16); every endpoint has a name and an alias shared by 5 replicas. */
function cluster(): { networks: NetworkRecord[]; endpoints: EndpointRecord[] } {
  const networks = Array.from({ length: NETWORKS }, (_, n): NetworkRecord => ({
    key: `127.${n + 1}.0.0-16`, subnet: `127.${n + 1}.0.0/16`, blockSize: 26, gateway: `127.${n + 1}.0.1`, name: `net${n}`,
  }));
  const endpoints = Array.from({ length: ENDPOINTS }, (_, i): EndpointRecord => {
    const network = networks[i % NETWORKS]!;
    const host = Math.floor(i / NETWORKS) + 2;
    return {
      id: `e${i}`, network: network.key, node: `h${i % 10}`, address: `127.${(i % NETWORKS) + 1}.${host >> 8}.${host & 255}`,
      hostIfname: `slv${i}`, containerId: `c${i}`, containerName: `app-${i}`, aliases: [`svc${i % 1000}`], labels: {}, ports: [],
    };
  });
  return { networks, endpoints };
}

/** A question from endpoint `asker` (an index) about a name on its own network: mostly A, some AAAA and PTR. */
function question(asker: number, endpoints: EndpointRecord[], n: number, id: number): Buffer {
  const peer = endpoints[(asker + NETWORKS * (n % 997)) % ENDPOINTS]!;
  const kind = n % 10;
  const q: dnsPacket.Question = kind === 8
    ? { type: 'AAAA', name: peer.containerName! }
    : kind === 9
      ? { type: 'PTR', name: `${peer.address.split('.').reverse().join('.')}.in-addr.arpa` }
      : { type: 'A', name: n % 2 === 0 ? peer.containerName! : `svc${(asker % NETWORKS) + NETWORKS * (n % 200)}` };
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [q] });
}

export const dnsThroughput: Scenario = {
  name: 'dns-throughput',
  labs: [],
  async run(ctx) {
    const { networks, endpoints } = cluster();
    const worker = new Worker(path.join(__dirname, '../dns-resolver-worker.js'), { workerData: { networks, endpoints } });
    const port = await new Promise<number>((resolve, reject) => worker.once('message', resolve).once('error', reject));
    const askers = endpoints.slice(0, CLIENTS);
    const latencies: number[] = [];
    const sentAt = new Map<string, number>();
    let sent = 0;
    const sockets = await Promise.all(askers.map(async (asker) => {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (bytes) => {
        const key = `${asker.address}/${bytes.readUInt16BE(0)}`;
        const at = sentAt.get(key);
        if (at === undefined) return;
        latencies.push(performance.now() - at);
        sentAt.delete(key);
      });
      await new Promise<void>((resolve) => socket.bind(0, asker.address, resolve));
      return socket;
    }));
    try {
      // Warm-up, not measured: the first query builds the name index, and the JIT settles.
      const warmUp = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => warmUp.bind(0, askers[0]!.address, resolve));
      for (let n = 0; n < 2000; n++) {
        const answered = new Promise((resolve) => warmUp.once('message', resolve));
        warmUp.send(question(0, endpoints, n, n), port, '127.0.0.1');
        await answered;
      }
      warmUp.close();
      const start = performance.now();
      // Each tick sends what the schedule says is due, so a late timer does not lower the offered rate.
      for (let elapsed = 0; elapsed < SECONDS * 1000; elapsed = performance.now() - start) {
        for (const due = Math.round((elapsed / 1000) * RATE); sent < due; sent++) {
          const c = sent % CLIENTS;
          const id = Math.floor(sent / CLIENTS) & 0xffff;
          sentAt.set(`${askers[c]!.address}/${id}`, performance.now());
          sockets[c]!.send(question(c, endpoints, sent, id), port, '127.0.0.1');
        }
        await sleep(TICK_MS);
      }
      const elapsed = (performance.now() - start) / 1000;
      await sleep(1000);
      ctx.log(`${sent} queries sent in ${elapsed.toFixed(1)} s, ${latencies.length} answered`);
      ctx.add(figure('dns-throughput', `answered queries/s at ${RATE}/s offered, ${ENDPOINTS} endpoints`, Math.round(latencies.length / elapsed), 'count', { op: '>=', limit: TARGET }));
      ctx.add(figure('dns-throughput', 'p99 round trip', percentile(latencies, 99), 'ms', { op: '<=', limit: 5 }));
      ctx.add(figure('dns-throughput', 'unanswered queries', sent - latencies.length, 'count'));
    } finally {
      for (const socket of sockets) socket.close();
      worker.postMessage('close');
      await new Promise((resolve) => worker.once('exit', resolve));
    }
  },
};
