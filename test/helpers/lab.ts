// A thin wrapper over scripts/lab.sh for the jest e2e tests: several Docker hosts on this
// machine, each a network namespace with its own dockerd (and sluice agent), etcd on the underlay.
// Every call runs the script with a timeout; nothing here talks to the kernel itself.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** The checkout's scripts/lab.sh, from test/helpers (jest) or from a build of it (dist-bench/test/helpers). */
export const LAB_SCRIPT = findUp(__dirname, path.join('scripts', 'lab.sh'));
export const TEST_IMAGE = 'sluice-test/busybox:local';
/** Where the agents serve names and the lab's dockerds (--dns) send what they do not know. */
export const LAB_DNS_ADDRESS = '169.254.53.53';
/** Every lab agent serves /metrics on its host address at this port (lab.sh METRICS_PORT). */
export const LAB_METRICS_PORT = 9453;

/** `file` (a path relative to a directory) in `from` or the nearest directory above that has it. */
export function findUp(from: string, file: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, file))) return path.join(dir, file);
    if (path.dirname(dir) === dir) throw new Error(`no ${file} in ${from} or above`);
  }
}

export type Topology = 'flat' | 'routed';
export type Backend = 'auto' | 'host-gw' | 'vxlan';

export interface LabOptions {
  /** Lab name: namespaces, dirs and pidfiles are keyed by it (default "e2e"). */
  name?: string;
  /** Number of hosts h1..hN (default 2). */
  hosts?: number;
  /** flat: one /24; routed: two subnets joined by a router, no shared link across them. */
  topology?: Topology;
  /** Start a sluice agent per host (default true; needs `npm run build`). */
  agent?: boolean;
  backend?: Backend;
  /** etcd (default) or the embedded file store, one per host. */
  store?: 'etcd' | 'file';
  /** etcd wants TLS and client certificates; agents and CLI get the lab's CA and certificate. */
  etcdTls?: boolean;
  /** etcd has auth on; agents and CLI log in as user sluice, whose role allows only /sluice/. */
  etcdAuth?: boolean;
  /** The agents' --encryption (default none). */
  encryption?: 'none' | 'wireguard';
  /** Timeout of `up` (default 180 s). */
  upTimeoutMs?: number;
  /** Timeout of every other call unless given (default 60 s). */
  callTimeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class LabError extends Error {
  constructor(
    message: string,
    readonly result?: RunResult,
  ) {
    super(message);
    this.name = 'LabError';
  }
}

/** Runs scripts/lab.sh; resolves with the exit code (never rejects on a non-zero exit), rejects on timeout. */
export function runLab(args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [LAB_SCRIPT, ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err == null) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: number | string };
        if (e.killed === true || (e.signal != null && typeof e.code !== 'number')) {
          reject(new LabError(`lab.sh ${args.join(' ')}: timed out after ${timeoutMs} ms\n${stderr}`, { stdout, stderr, code: -1 }));
          return;
        }
        if (typeof e.code === 'number') {
          resolve({ stdout, stderr, code: e.code });
          return;
        }
        reject(new LabError(`lab.sh ${args.join(' ')}: ${e.message}`));
      },
    );
  });
}

function must(what: string, r: RunResult): RunResult {
  if (r.code !== 0) {
    throw new LabError(`${what} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`, r);
  }
  return r;
}

export class Lab {
  readonly hosts: string[];

  private constructor(
    readonly name: string,
    readonly opts: Required<Omit<LabOptions, 'name'>>,
  ) {
    this.hosts = Array.from({ length: opts.hosts }, (_, i) => `h${i + 1}`);
  }

  /**
   * Starts a lab (cleaning leftovers of an earlier one of the same name first). On failure it
   * tears down what it made and throws with the script's output.
   * Set SLUICE_LAB_KEEP=1 to keep labs after the tests for a look around.
   */
  static async up(options: LabOptions = {}): Promise<Lab> {
    const name = options.name ?? 'e2e';
    const opts = {
      hosts: options.hosts ?? 2,
      topology: options.topology ?? 'flat',
      agent: options.agent ?? true,
      backend: options.backend ?? 'auto',
      store: options.store ?? 'etcd',
      etcdTls: options.etcdTls ?? false,
      etcdAuth: options.etcdAuth ?? false,
      encryption: options.encryption ?? 'none',
      upTimeoutMs: options.upTimeoutMs ?? 180_000,
      callTimeoutMs: options.callTimeoutMs ?? 60_000,
    } satisfies Required<Omit<LabOptions, 'name'>>;
    const args = ['--lab', name, 'up', '--hosts', String(opts.hosts), '--topology', opts.topology, '--backend', opts.backend, '--store', opts.store];
    if (!opts.agent) args.push('--no-agent');
    if (opts.etcdTls) args.push('--etcd-tls');
    if (opts.etcdAuth) args.push('--etcd-auth');
    if (opts.encryption !== 'none') args.push('--encryption', opts.encryption);
    let r: RunResult;
    try {
      r = await runLab(args, opts.upTimeoutMs);
    } catch (e) {
      await Lab.down(name).catch(() => undefined);
      throw e;
    }
    if (r.code !== 0) {
      if (process.env.SLUICE_LAB_KEEP !== '1') await Lab.down(name).catch(() => undefined);
      throw new LabError(`lab up failed (exit ${r.code}):\n${r.stdout}${r.stderr}`, r);
    }
    return new Lab(name, opts);
  }

  /** Tears a lab down by name (safe when it is not up). */
  static async down(name: string, timeoutMs = 180_000): Promise<void> {
    must(`lab down ${name}`, await runLab(['--lab', name, 'down'], timeoutMs));
  }

  /** Any lab.sh command for this lab, e.g. run(['status']). */
  run(args: string[], timeoutMs = this.opts.callTimeoutMs): Promise<RunResult> {
    return runLab(['--lab', this.name, ...args], timeoutMs);
  }

  /** The docker CLI against a host's dockerd. */
  docker(host: string, ...args: string[]): Promise<RunResult> {
    return this.run(['docker', host, ...args]);
  }

  /** The docker CLI; throws with stderr on a non-zero exit, else returns stdout without the final newline. */
  async dockerOk(host: string, ...args: string[]): Promise<string> {
    const r = must(`docker ${host} ${args.join(' ')}`, await this.docker(host, ...args));
    return r.stdout.replace(/\n$/, '');
  }

  /** A container's address on a network (or its only one). */
  async containerIp(host: string, container: string, network?: string): Promise<string> {
    const fmt =
      network == null
        ? '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
        : `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`;
    return (await this.dockerOk(host, 'inspect', '-f', fmt, container)).trim();
  }

  /** A command in the host's network (and mount) namespace; host may be 'underlay'. */
  exec(host: string, cmd: string[], timeoutMs?: number): Promise<RunResult> {
    return this.run(['exec', host, ...cmd], timeoutMs);
  }

  async execOk(host: string, cmd: string[], timeoutMs?: number): Promise<string> {
    const r = must(`exec ${host} ${cmd.join(' ')}`, await this.exec(host, cmd, timeoutMs));
    return r.stdout.replace(/\n$/, '');
  }

  /** The sluice CLI on a host, with SLUICE_STORE pointing at the lab's etcd. */
  sluice(host: string, ...args: string[]): Promise<RunResult> {
    return this.run(['sluice', host, ...args]);
  }

  /** The sluice CLI; throws with stderr on a non-zero exit, else returns stdout. */
  async sluiceOk(host: string, ...args: string[]): Promise<string> {
    return must(`sluice ${host} ${args.join(' ')}`, await this.sluice(host, ...args)).stdout;
  }

  /** DOCKER_HOST for a host's dockerd, whose socket the test process reaches directly. */
  dockerHost(host: string): string {
    return `unix:///run/sluice-lab/${this.name}/${host}/docker.sock`;
  }

  /** The host's plugin socket, as dockerd there sees /run/docker/plugins/sluice.sock. */
  pluginSocket(host: string): string {
    return `/run/sluice-lab/${this.name}/${host}/plugins/sluice.sock`;
  }

  /** The host's underlay address. */
  async hostIp(host: string): Promise<string> {
    return (must(`ip ${host}`, await this.run(['ip', host]))).stdout.trim();
  }

  /** The host's IPv6 underlay address, canonical (RFC 5952): fd00:250:S::N beside 10.250.S.N, e.g. fd00:250::11 for h1 of a flat lab. */
  async hostIp6(host: string): Promise<string> {
    return must(`ip6 ${host}`, await this.run(['ip6', host])).stdout.trim();
  }

  /** SLUICE_ETCD_* settings (NAME=VALUE) a client of the lab's etcd needs: none unless it is secured. */
  async storeEnv(): Promise<string[]> {
    return must('store-env', await this.run(['store-env'])).stdout.split('\n').filter((line) => line !== '');
  }

  /** The store URL, etcd://IP:2379 (reachable from the hosts' namespaces, not from the test process). */
  async etcdEndpoint(): Promise<string> {
    return must('etcd-endpoint', await this.run(['etcd-endpoint'])).stdout.trim();
  }

  /** The host's network namespace name (for `ip -n`). */
  async netns(host: string): Promise<string> {
    return must(`netns ${host}`, await this.run(['netns', host])).stdout.trim();
  }

  /** What runs, with pids (a stopped etcd, dockerd or agent shows as STOPPED). */
  async status(): Promise<string> {
    return (await this.run(['status'])).stdout;
  }

  /** The host's running agent: its pid and when it started, in seconds since boot (as /proc/uptime counts). */
  async agent(host: string): Promise<{ pid: number; startedAt: number }> {
    const pid = Number(new RegExp(`^\\s*${host}\\s.*agent pid (\\d+)`, 'm').exec(await this.status())?.[1]);
    if (!pid) throw new LabError(`no agent runs on ${host}`);
    // Field 22 of /proc/PID/stat, after the parenthesized command name: start time in clock ticks (USER_HZ, 100).
    const ticks = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[19]);
    return { pid, startedAt: ticks / 100 };
  }

  async agentStop(host: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
    must(`agent-stop ${host}`, await this.run(['agent-stop', host, signal]));
  }

  /** Starts the host's agent; `extraArgs` override the lab's flags (e.g. ['--docker-host', …]). */
  async agentStart(host: string, ...extraArgs: string[]): Promise<void> {
    must(`agent-start ${host}`, await this.run(['agent-start', host, ...extraArgs]));
  }

  async etcdStop(signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
    must('etcd-stop', await this.run(['etcd-stop', signal]));
  }

  async etcdStart(): Promise<void> {
    must('etcd-start', await this.run(['etcd-start']));
  }

  /** Restarts a host's dockerd (its containers stop with it). */
  async dockerdRestart(host: string): Promise<void> {
    must(`dockerd-restart ${host}`, await this.run(['dockerd-restart', host], 120_000));
  }

  /** Stops a host's dockerd; KILL crashes the host's Docker: dockerd, containerd, shims and containers die at once. */
  async dockerdStop(host: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
    must(`dockerd-stop ${host}`, await this.run(['dockerd-stop', host, signal]));
  }

  /** Starts a host's dockerd and waits until it answers (it restores its containers first: slow while its network plugin is away). */
  async dockerdStart(host: string): Promise<void> {
    must(`dockerd-start ${host}`, await this.run(['dockerd-start', host], 330_000));
  }

  async down(): Promise<void> {
    if (process.env.SLUICE_LAB_KEEP === '1') {
      process.stderr.write(`SLUICE_LAB_KEEP=1: lab '${this.name}' kept; bash scripts/lab.sh --lab ${this.name} down\n`);
      return;
    }
    await Lab.down(this.name);
  }
}
