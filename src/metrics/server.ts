/**
 * The agent's /metrics endpoint, plain node:http: one route, Prometheus text
 * format. Anything else is a 404.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorMessage } from '../errors';

export interface MetricsListener {
  /** Where it listens (the port is the real one when 0 was asked for). */
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function listenMetrics(registry: Registry, host: string, port: number): Promise<MetricsListener> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`collecting metrics: ${errorMessage(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`metrics on ${host}:${port}: ${errorMessage(err)}`)));
    server.listen(port, host, resolve);
  });
  // After listening, a failure (EMFILE on accept…) must not take the agent down.
  server.on('error', (err) => console.error(`sluice agent: metrics: ${errorMessage(err)}`));
  return {
    address: server.address() as AddressInfo,
    close: () => closeServer(server),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
