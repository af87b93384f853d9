/**
 * A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: its own temp
 * data dir, client and peer ports on 127.0.0.1, started and stopped by pid.
 *
 *   const etcd = await startEtcd();
 *   const store = new EtcdStore({ endpoints: [etcd.endpoint] });
 *   await etcd.kill();    // "etcd is down": process gone, data and ports kept
 *   await etcd.restart(); // same data, same endpoint
 *   await etcd.stop();    // process gone, temp dir removed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BINARY = process.env['ETCD_BINARY'] ?? '/usr/bin/etcd';
const START_TIMEOUT_MS = 15_000;

export interface EtcdInstance {
  /** "127.0.0.1:PORT", as the store URL and EtcdStore take it. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** The running process's pid, undefined while killed. */
  readonly pid: number | undefined;
  /** Kills the process (SIGKILL, like a crash) and keeps the data dir and ports for restart(). */
  kill(): Promise<void>;
  /** Starts the same member again on the same ports and data; resolves once it is healthy. */
  restart(): Promise<void>;
  /** Kills the process and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdInstance> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-etcd-'));
  try {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const instance = new EtcdProcess(dataDir, clientPort, peerPort);
    await instance.restart();
    return instance;
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

class EtcdProcess implements EtcdInstance {
  readonly endpoint: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  // If the test process dies before stop(), do not leave an etcd behind.
  private readonly killOnExit = (): void => {
    if (this.child?.pid !== undefined && this.child.exitCode === null) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  constructor(
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {
    this.endpoint = `127.0.0.1:${clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('etcd helper: restart() after stop()');
    await this.kill();
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      ETCD_BINARY,
      [
        '--name', 'sluice-test',
        '--data-dir', join(this.dataDir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `sluice-test=${peer}`,
        '--initial-cluster-state', 'new',
        // Fast ticks: quick start, and a minimum lease TTL of 1 s instead of 2 s.
        '--heartbeat-interval', '10',
        '--election-timeout', '100',
        '--logger', 'zap',
        '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.once('exit', this.killOnExit);
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        reject(new Error(`etcd exited during start (code ${code}, signal ${signal}): ${stderr.trim()}`)),
      );
    });
    failed.catch(() => undefined); // only raced below; a later exit is kill()'s business
    try {
      await Promise.race([waitHealthy(client), failed]);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGKILL');
    }
    await this.exited;
    process.removeListener('exit', this.killOnExit);
    this.child = undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** A port the kernel just handed out on 127.0.0.1, closed again for etcd to take. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

async function waitHealthy(clientUrl: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const body = await httpGet(`${clientUrl}/health`);
      if (/"health"\s*:\s*"true"/.test(body)) return;
      last = body;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`etcd at ${clientUrl} not healthy after ${START_TIMEOUT_MS} ms: ${last}`);
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
