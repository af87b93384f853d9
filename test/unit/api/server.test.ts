/**
 * listenUnix on real Unix sockets in a temp dir: stale versus live sockets,
 * file modes, and the bounded drain on close.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { buildApp } from '../../../src/api/app';
import { listenUnix } from '../../../src/api/server';
import type { UnixListener } from '../../../src/api/server';
import { FakeIpamService, FakeNetworkService, goJson, send, tempDir } from './harness';

const quiet = { debug: () => undefined, error: () => undefined };
const JOIN = goJson({ NetworkID: 'a1'.repeat(32), EndpointID: 'e1'.repeat(32), SandboxKey: '/var/run/docker/netns/abc', Options: null });

let dir: string;
let network: FakeNetworkService;
let app: http.RequestListener;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(() => {
  dir = tempDir();
  network = new FakeNetworkService();
  app = buildApp({ network, ipam: new FakeIpamService(), log: quiet });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function listen(socketPath: string, opts?: Parameters<typeof listenUnix>[2]): Promise<UnixListener> {
  const listener = await listenUnix(app, socketPath, opts);
  cleanups.push(() => listener.close());
  return listener;
}

function mode(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

/** A socket file nobody listens on, as a killed agent leaves behind. */
async function staleSocket(socketPath: string): Promise<void> {
  const side = `${socketPath}.live`;
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(side, resolve));
  // A second name for the same socket inode survives the close that unlinks `side`.
  fs.linkSync(side, socketPath);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A listenUnix expected to fail; should it succeed anyway, the listener is still closed after the test. */
function refused(socketPath: string): Promise<UnixListener> {
  const attempt = listenUnix(app, socketPath);
  cleanups.push(() => attempt.then((listener) => listener.close(), () => undefined));
  return attempt;
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('listenUnix', () => {
  it('creates a root-only parent dir and a 0660 socket that serves the app', async () => {
    const socketPath = path.join(dir, 'run', 'plugins', 'sluice.sock');
    await listen(socketPath);
    expect(mode(path.dirname(socketPath))).toBe(0o700);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(mode(socketPath)).toBe(0o660);
    expect((await send(socketPath, '/Plugin.Activate')).json).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  });

  it('applies a configured socket mode', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    await listen(socketPath, { mode: 0o600 });
    expect(mode(socketPath)).toBe(0o600);
  });

  it('replaces a stale socket left by a dead agent', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    await staleSocket(socketPath);
    await expect(new Promise((_resolve, reject) => net.createConnection(socketPath).on('error', reject))).rejects.toThrow(
      /ECONNREFUSED/,
    );

    await listen(socketPath);
    expect((await send(socketPath, '/Plugin.Activate')).status).toBe(200);
  });

  it('refuses the live socket of another agent and leaves it alone', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    const other = http.createServer((_req, res) => res.end('{"other":true}'));
    await new Promise<void>((resolve) => other.listen(socketPath, resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));

    await expect(refused(socketPath)).rejects.toThrow(`another agent is serving ${socketPath}`);
    expect((await send(socketPath, '/Plugin.Activate')).json).toEqual({ other: true });
  });

  it('refuses to delete a file that is not a socket', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    fs.writeFileSync(socketPath, 'precious');
    await expect(refused(socketPath)).rejects.toThrow(`${socketPath} exists and is not a socket`);
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('precious');
  });

  it('close stops accepting and removes the socket; a second close is a no-op', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    const listener = await listen(socketPath);
    await listener.close();
    expect(fs.existsSync(socketPath)).toBe(false);
    await expect(send(socketPath, '/Plugin.Activate')).rejects.toThrow(/ENOENT/);
    await expect(listener.close()).resolves.toBeUndefined();
  });

  it('close waits for an in-flight request, then ends its keep-alive connection at once', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    const listener = await listen(socketPath, { closeTimeoutMs: 10_000 });
    const agent = new http.Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    const release = network.holdNext('join');
    const inFlight = send(socketPath, '/NetworkDriver.Join', JOIN, { agent });
    await until(() => network.calls.length === 1);

    let closed = false;
    const closing = listener.close().then(() => (closed = true));
    await until(() => !fs.existsSync(socketPath));
    expect(closed).toBe(false);

    release();
    const reply = await inFlight;
    expect(reply.status).toBe(200);
    // What ends the connection with the reply: without it, close() would wait for Node's keep-alive timeout.
    expect(reply.headers.connection).toBe('close');
    await closing;
  });

  it('close cuts off requests that outlast the bound', async () => {
    const socketPath = path.join(dir, 'sluice.sock');
    const listener = await listen(socketPath, { closeTimeoutMs: 50 });
    const release = network.holdNext('join');
    cleanups.push(release);
    const inFlight = send(socketPath, '/NetworkDriver.Join', JOIN);
    await until(() => network.calls.length === 1);

    await listener.close();
    await expect(inFlight).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});
