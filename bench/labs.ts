// The bench's labs (names start with bench-, so e2e labs are never touched) and what the
// scenarios do on them: docker commands timed without lab.sh in the way, container and agent
// pids, the etcd tool in the underlay, waiting for agents to go quiet.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Lab, runLab, type LabOptions } from '../test/helpers/lab';
import { nowMs, run, runOk, sleep, type Finished } from './proc';

export const IMAGE = 'sluice-test/busybox:local';
export const NET = 'appnet';
export const SUBNET = '10.96.0.0/16';
/** The network's key in the store (its subnet with '/' as '-'). */
export const NET_KEY = '10.96.0.0-16';

export type LabKey = 'one' | 'oneTls' | 'flat2' | 'flat2Tls' | 'flat3' | 'routed2';

const SPECS: Record<LabKey, LabOptions & { name: string }> = {
  one: { name: 'bench-one', hosts: 1, topology: 'flat', store: 'etcd' },
  oneTls: { name: 'bench-onetls', hosts: 1, topology: 'flat', store: 'etcd', etcdTls: true },
  flat2: { name: 'bench-flat2', hosts: 2, topology: 'flat' },
  flat2Tls: { name: 'bench-flat2tls', hosts: 2, topology: 'flat', etcdTls: true },
  flat3: { name: 'bench-flat3', hosts: 3, topology: 'flat' },
  routed2: { name: 'bench-routed2', hosts: 2, topology: 'routed' },
};

/** Labs brought up on first use (with the sluice network on every host) and kept until released. */
export class LabPool {
  private readonly labs = new Map<LabKey, Lab>();
  private closed = false;

  async get(key: LabKey): Promise<Lab> {
    const existing = this.labs.get(key);
    if (existing) return existing;
    if (this.closed) throw new Error('the bench is stopping');
    const lab = await Lab.up(SPECS[key]);
    this.labs.set(key, lab);
    if (this.closed) {
      // Came up while the bench was being stopped: nobody else would take it down.
      await this.release(key);
      throw new Error('the bench is stopping');
    }
    for (const host of lab.hosts) await dockerOk(lab, host, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', SUBNET, NET);
    return lab;
  }

  /** Tears a lab down (if up); falls back to `lab.sh down` by name. */
  async release(key: LabKey): Promise<void> {
    const lab = this.labs.get(key);
    this.labs.delete(key);
    if (!lab) return;
    try {
      await lab.down();
    } catch (err) {
      process.stderr.write(`bench: lab ${lab.name} down failed (${String(err)}); retrying with lab.sh down\n`);
      await runLab(['--lab', lab.name, 'down'], 180_000).catch(() => undefined);
    }
  }

  /** Tears every lab down; labs asked for afterwards are refused. */
  async releaseAll(): Promise<void> {
    this.closed = true;
    for (const key of [...this.labs.keys()]) await this.release(key);
  }
}

// lab.sh picks /usr/bin/docker when present; the same client is used here.
const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

function dockerArgs(lab: Lab, host: string, args: string[]): string[] {
  return ['-H', lab.dockerHost(host), ...args];
}

/** The docker CLI against a host's dockerd, straight to its socket. */
export function docker(lab: Lab, host: string, ...args: string[]): Promise<Finished> {
  return run(DOCKER, dockerArgs(lab, host, args), 120_000);
}

export async function dockerOk(lab: Lab, host: string, ...args: string[]): Promise<string> {
  return (await runOk(DOCKER, dockerArgs(lab, host, args), 120_000)).stdout.trim();
}

/** Wall time of one docker command that must succeed, in ms. */
export async function timedDocker(lab: Lab, host: string, ...args: string[]): Promise<number> {
  const started = nowMs();
  const r = await docker(lab, host, ...args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${host} failed: ${r.stderr.trim()}`);
  return r.endedAt - started;
}

export interface ContainerSpec {
  name: string;
  labels?: Record<string, string>;
  ip?: string;
  /** Default: sleep for an hour. */
  cmd?: string[];
}

/** `docker run -d --init` on the sluice network; resolves with the container's address. */
export async function startContainer(lab: Lab, host: string, spec: ContainerSpec): Promise<string> {
  const labels = Object.entries(spec.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const ip = spec.ip === undefined ? [] : ['--ip', spec.ip];
  await dockerOk(lab, host, 'run', '-d', '--init', '--name', spec.name, '--net', NET, ...labels, ...ip, IMAGE, ...(spec.cmd ?? ['sleep', '3600']));
  return containerIp(lab, host, spec.name);
}

export const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];

export async function containerIp(lab: Lab, host: string, name: string): Promise<string> {
  return dockerOk(lab, host, 'inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, name);
}

export async function containerPid(lab: Lab, host: string, name: string): Promise<string> {
  return dockerOk(lab, host, 'inspect', '-f', '{{.State.Pid}}', name);
}

/** The agent's pid, from the pidfile lab.sh writes (the launcher execs node, so it is node's). */
export function agentPid(lab: Lab, host: string): number {
  return Number(readFileSync(`/run/sluice-lab/${lab.name}/${host}/agent.pid`, 'utf8').trim());
}

export function agentLog(lab: Lab, host: string): string {
  return `/run/sluice-lab/${lab.name}/${host}/agent.log`;
}

/** Fields of /proc/PID/status in kB, e.g. VmRSS. */
export function procStatusKb(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
  return Number(fields[11]) + Number(fields[12]);
}

/** Waits until no agent of the lab used CPU for a while (a converge finished), up to a bound. */
export async function waitAgentsIdle(lab: Lab, quietMs = 500, timeoutMs = 120_000): Promise<void> {
  const pids = lab.hosts.map((h) => agentPid(lab, h));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const before = pids.map(cpuTicks);
    await sleep(quietMs);
    // One tick of slack for the agent's own timers.
    if (pids.every((pid, i) => cpuTicks(pid) - before[i]! <= 1)) return;
    if (Date.now() > deadline) throw new Error(`agents of ${lab.name} still busy after ${timeoutMs / 1000} s`);
  }
}

/** Runs a command in a host's network namespace (not through lab.sh, for long-running helpers). */
export async function netnsCommand(lab: Lab, host: string, cmd: string[]): Promise<[string, string[]]> {
  return ['nsenter', [`--net=/run/netns/${await lab.netns(host)}`, '--', ...cmd]];
}

/** Runs a command in a container's network namespace. */
export function containerCommand(pid: string, cmd: string[]): [string, string[]] {
  return ['nsenter', ['-t', pid, '-n', '--', ...cmd]];
}

const ETCD_TOOL = path.join(__dirname, 'etcd-tool.js');

async function etcdToolArgs(lab: Lab, args: string[]): Promise<string[]> {
  return ['env', ...(await lab.storeEnv()), process.execPath, ETCD_TOOL, await lab.etcdEndpoint(), ...args];
}

/** bench/etcd-tool.ts with its arguments, as a command for the underlay namespace (where etcd is reachable). */
export async function etcdToolCommand(lab: Lab, args: string[]): Promise<[string, string[]]> {
  // lab.sh names the underlay namespace sluice-<lab>-ul.
  return ['nsenter', [`--net=/run/netns/sluice-${lab.name}-ul`, '--', ...(await etcdToolArgs(lab, args))]];
}

/** Runs bench/etcd-tool.ts in the underlay; returns its JSON lines. */
export async function etcdTool(lab: Lab, args: string[], timeoutMs = 120_000): Promise<unknown[]> {
  const r = await lab.exec('underlay', await etcdToolArgs(lab, args), timeoutMs);
  if (r.code !== 0) throw new Error(`etcd-tool ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
  return r.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as unknown);
}

/** Removes containers by name, a few at a time, ignoring those already gone. */
export async function removeContainers(lab: Lab, host: string, names: readonly string[], parallel = 4): Promise<void> {
  const queue = [...names];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) await docker(lab, host, 'rm', '-f', name);
    }),
  );
}
