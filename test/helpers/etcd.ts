/**
 * A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: its own temp
 * data dir, client and peer ports on 127.0.0.1, started and stopped by pid.
 * Optionally secured: TLS with required client certificates (a PKI made by
 * scripts/etcd-certs.sh, plus a rogue one), and/or auth with a user limited
 * to /sluice/.
 *
 *   const etcd = await startEtcd({ tls: true, auth: true });
 *   const store = new EtcdStore({ endpoints: [etcd.endpoint], ...etcd.secured });
 *   await etcd.kill();    // "etcd is down": process gone, data and ports kept
 *   await etcd.restart(); // same data, same endpoint
 *   await etcd.stop();    // process gone, temp dir removed
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import type { EtcdAuth, EtcdTls } from '../../src/store/etcd-store/options';

export const ETCD_BINARY = process.env['ETCD_BINARY'] ?? '/usr/bin/etcd';
const START_TIMEOUT_MS = 15_000;
const CERTS_SCRIPT = join(__dirname, '../../scripts/etcd-certs.sh');

/** The etcd user Sluice logs in as when auth is on: role "sluice", read-write on /sluice/ only. */
export const SLUICE_USER: EtcdAuth = { username: 'sluice', password: 'sluice-test-password' };
const ROOT_USER: EtcdAuth = { username: 'root', password: 'root-test-password' };

export interface EtcdOptions {
  /** Clients must speak TLS and show a certificate signed by the test CA. */
  tls?: boolean;
  /** Auth on: user root (everything) and SLUICE_USER. */
  auth?: boolean;
}

/** File paths (PEM) of a test PKI from scripts/etcd-certs.sh. */
export interface Pki {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdInstance {
  /** "127.0.0.1:PORT", as the store URL and EtcdStore take it. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** The running process's pid, undefined while killed. */
  readonly pid: number | undefined;
  /** The test CA and client certificate etcd trusts (tls only). */
  readonly pki: Pki | undefined;
  /** A CA and client certificate of another PKI, which etcd does not trust (tls only). */
  readonly roguePki: Pki | undefined;
  /** What an EtcdStore needs to reach this etcd as Sluice: TLS material and login. */
  readonly secured: { tls?: EtcdTls; auth?: EtcdAuth };
  /** Auth only: a user (and a role of the same name) with read-write on one key prefix only. */
  addUser(user: EtcdAuth, prefix: string): Promise<void>;
  /** Kills the process (SIGKILL, like a crash) and keeps the data dir and ports for restart(). */
  kill(): Promise<void>;
  /** Starts the same member again on the same ports and data; resolves once it is healthy. */
  restart(): Promise<void>;
  /** Kills the process and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** Tries of fresh ports: one the kernel just handed out may be taken by another process before etcd binds it. */
const PORT_ATTEMPTS = 3;

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdInstance> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdOnce(options);
    } catch (err) {
      if (attempt === PORT_ATTEMPTS || !String(err).includes('address already in use')) throw err;
    }
  }
}

async function startEtcdOnce(options: EtcdOptions): Promise<EtcdInstance> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-etcd-'));
  try {
    const [clientPort, peerPort, healthPort] = [await freePort(), await freePort(), await freePort()];
    const pkiDir = join(dataDir, 'pki');
    const [pki, roguePki] = options.tls ? [await makePki(pkiDir), await makePki(join(dataDir, 'rogue'))] : [];
    const tls = pki && { ca: await readFile(pki.ca), cert: await readFile(pki.cert), key: await readFile(pki.key) };
    const instance = new EtcdProcess(dataDir, { clientPort, peerPort, healthPort }, {
      tlsArgs: pki
        ? ['--cert-file', join(pkiDir, 'server.crt'), '--key-file', join(pkiDir, 'server.key'), '--trusted-ca-file', pki.ca, '--client-cert-auth']
        : [],
      pki,
      roguePki,
      secured: { ...(tls && { tls }), ...(options.auth && { auth: SLUICE_USER }) },
    });
    await instance.restart();
    if (options.auth) await enableAuth(instance.endpoint, tls);
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
    private readonly ports: { clientPort: number; peerPort: number; healthPort: number },
    private readonly setup: Pick<EtcdInstance, 'pki' | 'roguePki' | 'secured'> & { tlsArgs: string[] },
  ) {
    this.endpoint = `127.0.0.1:${ports.clientPort}`;
  }

  get pki(): Pki | undefined {
    return this.setup.pki;
  }

  get roguePki(): Pki | undefined {
    return this.setup.roguePki;
  }

  get secured(): EtcdInstance['secured'] {
    return this.setup.secured;
  }

  async addUser(user: EtcdAuth, prefix: string): Promise<void> {
    await asRoot(this.endpoint, this.setup.secured.tls, async (client) => {
      const role = await client.role(user.username).create();
      await role.grant({ permission: 'Readwrite', range: client.range({ prefix }) });
      await client.user(user.username).create(user.password);
      await client.user(user.username).addRole(user.username);
    });
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('etcd helper: restart() after stop()');
    await this.kill();
    const client = `${this.pki ? 'https' : 'http'}://127.0.0.1:${this.ports.clientPort}`;
    const peer = `http://127.0.0.1:${this.ports.peerPort}`;
    // /health on a plain port of its own: the client port may want a certificate.
    const health = `http://127.0.0.1:${this.ports.healthPort}`;

    const child = spawn(
      ETCD_BINARY,
      [
        '--name', 'sluice-test',
        '--data-dir', join(this.dataDir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-metrics-urls', health,
        ...this.setup.tlsArgs,
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
      await Promise.race([waitHealthy(health), failed]);
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

async function makePki(dir: string): Promise<Pki> {
  await promisify(execFile)('bash', [CERTS_SCRIPT, dir, '127.0.0.1']);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
}

/** Users root and SLUICE_USER, role "sluice" with read-write on /sluice/ only, then auth on. */
async function enableAuth(endpoint: string, tls: EtcdTls | undefined): Promise<void> {
  await adminClient(endpoint, tls, undefined, async (client) => {
    await client.role('root').create();
    await client.user(ROOT_USER.username).create(ROOT_USER.password);
    await client.user(ROOT_USER.username).addRole('root');
    const role = await client.role('sluice').create();
    await role.grant({ permission: 'Readwrite', range: client.range({ prefix: '/sluice/' }) });
    await client.user(SLUICE_USER.username).create(SLUICE_USER.password);
    await client.user(SLUICE_USER.username).addRole('sluice');
    await client.auth.authEnable();
  });
}

function asRoot(endpoint: string, tls: EtcdTls | undefined, fn: (client: Etcd3) => Promise<void>): Promise<void> {
  return adminClient(endpoint, tls, ROOT_USER, fn);
}

async function adminClient(
  endpoint: string,
  tls: EtcdTls | undefined,
  auth: EtcdAuth | undefined,
  fn: (client: Etcd3) => Promise<void>,
): Promise<void> {
  const client = new Etcd3({
    hosts: `${tls ? 'https' : 'http'}://${endpoint}`,
    ...(tls && { credentials: { rootCertificate: tls.ca!, privateKey: tls.key, certChain: tls.cert } }),
    ...(auth && { auth }),
  });
  try {
    await fn(client);
  } finally {
    client.close();
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
