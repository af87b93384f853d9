// The resolver on its own thread (its own core) for the dns-throughput scenario: it knows the
// endpoints it is given, answers on 127.0.0.1:<free port>, and posts that port back.
import { parentPort, workerData } from 'node:worker_threads';
import type { EndpointRecord, NetworkRecord } from '../src/model';
import { Resolver } from '../src/dns/server';

interface Input {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
}

async function main(): Promise<void> {
  const { networks, endpoints } = workerData as Input;
  // The figure is the resolver's own speed: the bench's few sources would otherwise meet the per-source limit.
  const resolver = await Resolver.start({
    address: '127.0.0.1',
    port: 0,
    upstreams: [],
    rateLimit: { perSecond: 1e9, burst: 1e9, maxSources: 10_000 },
  });
  resolver.update({ networks: new Map(networks.map((n) => [n.key, n])), endpoints: new Map(endpoints.map((e) => [e.id, e])) });
  parentPort!.on('message', () => void resolver.close().then(() => parentPort!.close()));
  parentPort!.postMessage(resolver.port);
}

void main();
