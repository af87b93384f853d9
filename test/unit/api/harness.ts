/**
 * Test doubles for the API tests: recording fake services (real
 * implementations of the service interfaces, with failure injection) and an
 * HTTP client that sends requests the way dockerd's Go client does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  IpamService,
  JoinRequest,
  JoinResult,
  NetworkService,
  RequestAddressRequest,
  RequestPoolRequest,
  RequestPoolResult,
} from '../../../src/protocol/services';
import type { PortMapping } from '../../../src/model';

export interface Call {
  method: string;
  args: unknown[];
}

/** Records every call; a call can be told to fail or to wait until released. */
class Recorder<M extends string> {
  readonly calls: Call[] = [];
  private readonly failures = new Map<M, Error>();
  private readonly holds = new Map<M, Promise<void>>();

  /** The next call of `method` rejects with `err`. */
  failNext(method: M, err: Error): void {
    this.failures.set(method, err);
  }

  /** The next call of `method` waits until the returned function is called. */
  holdNext(method: M): () => void {
    let release!: () => void;
    this.holds.set(method, new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  protected async settle<T>(method: M, args: unknown[], value: T): Promise<T> {
    this.calls.push({ method, args });
    const hold = this.holds.get(method);
    this.holds.delete(method);
    if (hold !== undefined) await hold;
    const err = this.failures.get(method);
    if (err !== undefined) {
      this.failures.delete(method);
      throw err;
    }
    return value;
  }
}

export class FakeNetworkService extends Recorder<keyof NetworkService> implements NetworkService {
  createEndpointResult: { macAddress?: string } = {};
  operInfo: Record<string, unknown> = {};
  joinResult: JoinResult = {
    srcName: 'slc1a2b3c4d5',
    dstPrefix: 'eth',
    gateway: '169.254.1.1',
    staticRoutes: [{ destination: '169.254.1.1/32', routeType: 1 }],
    disableGatewayService: false,
  };

  createNetwork(req: CreateNetworkRequest): Promise<void> {
    return this.settle('createNetwork', [req], undefined);
  }
  deleteNetwork(networkId: string): Promise<void> {
    return this.settle('deleteNetwork', [networkId], undefined);
  }
  createEndpoint(req: CreateEndpointRequest): Promise<{ macAddress?: string }> {
    return this.settle('createEndpoint', [req], this.createEndpointResult);
  }
  deleteEndpoint(networkId: string, endpointId: string): Promise<void> {
    return this.settle('deleteEndpoint', [networkId, endpointId], undefined);
  }
  endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>> {
    return this.settle('endpointOperInfo', [networkId, endpointId], this.operInfo);
  }
  join(req: JoinRequest): Promise<JoinResult> {
    return this.settle('join', [req], this.joinResult);
  }
  leave(networkId: string, endpointId: string): Promise<void> {
    return this.settle('leave', [networkId, endpointId], undefined);
  }
  programExternalConnectivity(networkId: string, endpointId: string, portMappings: PortMapping[]): Promise<void> {
    return this.settle('programExternalConnectivity', [networkId, endpointId, portMappings], undefined);
  }
  revokeExternalConnectivity(networkId: string, endpointId: string): Promise<void> {
    return this.settle('revokeExternalConnectivity', [networkId, endpointId], undefined);
  }
}

export class FakeIpamService extends Recorder<keyof IpamService> implements IpamService {
  poolResult: RequestPoolResult = {
    poolId: '10.77.0.0-16',
    pool: '10.77.0.0/16',
    data: { 'com.docker.network.gateway': '10.77.0.1/16' },
  };
  addressResult = { address: '10.77.0.12/16' };

  requestPool(req: RequestPoolRequest): Promise<RequestPoolResult> {
    return this.settle('requestPool', [req], this.poolResult);
  }
  releasePool(poolId: string): Promise<void> {
    return this.settle('releasePool', [poolId], undefined);
  }
  requestAddress(req: RequestAddressRequest): Promise<{ address: string }> {
    return this.settle('requestAddress', [req], this.addressResult);
  }
  releaseAddress(poolId: string, address: string): Promise<void> {
    return this.settle('releaseAddress', [poolId, address], undefined);
  }
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-api-'));
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed body; undefined if it was not JSON. */
  json: unknown;
}

/** JSON as Go's json.Encoder writes it: with a trailing newline. */
export function goJson(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

export interface SendOptions {
  method?: string;
  agent?: http.Agent;
  /** Extra headers, e.g. a Content-Type dockerd would not send. */
  headers?: Record<string, string>;
}

/**
 * Sends a request as dockerd 20.10.24 does: POST, no Content-Type, the socket
 * path as Host, an explicit Content-Length (0 for argument-less calls).
 */
export function send(socketPath: string, urlPath: string, body = '', opts: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        path: urlPath,
        method: opts.method ?? 'POST',
        agent: opts.agent,
        headers: {
          Host: socketPath,
          'User-Agent': 'Go-http-client/1.1',
          Accept: 'application/vnd.docker.plugins.v1.2+json',
          'Accept-Encoding': 'gzip',
          'Content-Length': Buffer.byteLength(body),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Serves a request listener on a fresh Unix socket, like dockerd would reach the plugin. */
export async function serve(listener: http.RequestListener): Promise<{ socketPath: string; close(): Promise<void> }> {
  const dir = tempDir();
  const socketPath = path.join(dir, 'sluice.sock');
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
