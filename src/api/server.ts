/**
 * Serves the plugin app on the Unix socket dockerd dials
 * (`/run/docker/plugins/<name>.sock` for a v1 plugin). Starting refuses to
 * steal the socket of a running agent but replaces one left by a dead agent;
 * close() drains in-flight requests, within a bound, so a SIGTERM between
 * CreateEndpoint and its reply does not leave dockerd with a half answer.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { ConflictError } from '../errors';

export interface ListenOptions {
  /** Socket file mode. dockerd runs as root; 0660 lets an admin group use the CLI-side tools, nobody else. */
  mode?: number;
  /** How long close() waits for in-flight requests before cutting them off. */
  closeTimeoutMs?: number;
  /** Server-level failures after listening (e.g. EMFILE on accept), which would otherwise crash the process. */
  onError?: (err: Error) => void;
}

export interface UnixListener {
  /** Stops accepting, waits for in-flight requests (bounded), removes the socket. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MODE = 0o660;
/** Long enough for any store round trip a request makes, short enough for a SIGTERM-to-exit budget. */
const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/** Structural, not instanceof: errors from Node's core may come from another realm (as under jest). */
function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** True if something accepts connections on the socket, false if it is stale. */
function isServed(socketPath: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err) => {
      const code = errnoCode(err);
      // ECONNREFUSED: a socket file with no listener; ENOENT: removed meanwhile.
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false);
      else reject(new Error(`cannot tell whether ${socketPath} is in use: ${err.message}`));
    });
  });
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let st;
  try {
    st = await lstat(socketPath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  // A regular file here is a misconfigured path, not ours to delete.
  if (!st.isSocket()) throw new ConflictError(`${socketPath} exists and is not a socket`);
  if (await isServed(socketPath)) throw new ConflictError(`another agent is serving ${socketPath}`);
  await unlink(socketPath).catch((err: unknown) => {
    if (errnoCode(err) !== 'ENOENT') throw err;
  });
}

/**
 * Listens on `socketPath` with `handler` (an express app) and returns a
 * handle to close it.
 *
 * @example
 *   const listener = await listenUnix(buildApp(deps), '/run/docker/plugins/sluice.sock');
 *   process.once('SIGTERM', () => void listener.close());
 */
export async function listenUnix(
  handler: http.RequestListener,
  socketPath: string,
  opts: ListenOptions = {},
): Promise<UnixListener> {
  const { mode = DEFAULT_MODE, closeTimeoutMs = DEFAULT_CLOSE_TIMEOUT_MS, onError = (err) => console.error(err) } = opts;
  // 0700 only applies if we create it; dockerd creates /run/docker/plugins root-only itself.
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  await removeStaleSocket(socketPath);

  let closing = false;
  const inFlight = new Set<http.ServerResponse>();
  const server = http.createServer();
  // Registered before the app so it sees every response before the app can send it.
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
    if (closing) res.setHeader('Connection', 'close');
  });
  server.on('request', handler);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', onError);
  try {
    await chmod(socketPath, mode);
  } catch (err) {
    server.close();
    throw err;
  }

  async function shutdown(): Promise<void> {
    closing = true;
    // Otherwise each drained keep-alive connection would hold close() for Node's keep-alive timeout.
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    // libuv unlinks the socket file as it closes the listening handle, before
    // a successor could bind the path, so there is nothing left to remove.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const timer = setTimeout(() => server.closeAllConnections(), closeTimeoutMs);
    await closed;
    clearTimeout(timer);
  }

  let shutdownOnce: Promise<void> | undefined;
  return {
    close: () => (shutdownOnce ??= shutdown()),
  };
}
