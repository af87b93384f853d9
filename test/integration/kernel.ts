/**
 * Helpers for integration tests: run a tool and read its output, and fake
 * "containers" and "peer hosts" as network namespaces made inside the test's
 * own throwaway namespace (see netns-guard.ts).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CommandRunner } from '../../src/dataplane/linux/command-runner';

/** Runs a tool in this namespace, throwing with its stderr on failure. */
export function sh(command: string, ...args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function json<T>(command: string, ...args: string[]): T {
  const out = sh(command, ...args).trim();
  return (out === '' ? [] : JSON.parse(out)) as T;
}

/**
 * A network namespace standing in for a container or another host. Named
 * sluice-it-PID-LABEL, so scripts/in-netns.sh deletes it if this process dies
 * before delete() runs.
 */
export class Netns {
  readonly name: string;

  constructor(label: string) {
    this.name = `sluice-it-${process.pid}-${label}`;
    sh('ip', 'netns', 'add', this.name);
    this.sh('ip', 'link', 'set', 'lo', 'up');
  }

  sh(command: string, ...args: string[]): string {
    return sh('nsenter', `--net=/run/netns/${this.name}`, command, ...args);
  }

  /** Moves `ifname` in, addresses it and routes everything via `gateway`, as Docker does after Join. */
  adopt(ifname: string, cidr: string, gateway: string): void {
    sh('ip', 'link', 'set', ifname, 'netns', this.name);
    this.sh('ip', 'link', 'set', ifname, 'up');
    this.sh('ip', 'address', 'add', cidr, 'dev', ifname);
    this.sh('ip', 'route', 'add', 'default', 'via', gateway);
  }

  canPing(ip: string): boolean {
    return spawnSync('nsenter', [`--net=/run/netns/${this.name}`, 'ping', '-c1', '-W1', ip], { stdio: 'ignore' }).status === 0;
  }

  /** Ping with `source` as the source address (one of this namespace's). */
  canPingFrom(source: string, ip: string): boolean {
    return spawnSync('nsenter', [`--net=/run/netns/${this.name}`, 'ping', '-c1', '-W1', '-I', source, ip], { stdio: 'ignore' }).status === 0;
  }

  /** True if an HTTP GET of `url` gets a page within a second. */
  canFetch(url: string): boolean {
    return fetches(url, ['nsenter', `--net=/run/netns/${this.name}`]);
  }

  delete(): void {
    sh('ip', 'netns', 'delete', this.name);
  }
}

/** True if an HTTP GET of `url` from this namespace (the host), or through `prefix` (nsenter …), gets a page within a second. */
export function fetches(url: string, prefix: string[] = []): boolean {
  const [command, ...args] = [...prefix, 'curl', '--silent', '--fail', '--max-time', '1', '--output', '/dev/null', url];
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

/**
 * A web server (busybox httpd) on `address`:`port`, in `netns` or else in this
 * namespace (the host), answering once this returns; stop() ends it.
 */
export async function serveHttp(address: string, port: number, netns?: Netns): Promise<{ stop(): void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-it-www-'));
  writeFileSync(path.join(dir, 'index.html'), 'ok\n');
  const httpd = ['busybox', 'httpd', '-f', '-p', `${address}:${port}`, '-h', dir];
  const [command, ...args] = netns === undefined ? httpd : ['nsenter', `--net=/run/netns/${netns.name}`, ...httpd];
  const child = spawn(command!, args, { stdio: 'ignore' });
  const stop = (): void => {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  for (let tries = 0; !fetches(`http://${address}:${port}/`); tries++) {
    if (tries === 50) {
      stop();
      throw new Error(`httpd on ${address}:${port} did not answer`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { stop };
}

/**
 * Sluice's part of one family's firewall as the kernel shows it: the lines of
 * `iptables-save` or `ip6tables-save` (filter, nat) naming Sluice, and `ipset
 * save` of the sets named `setPrefix`, sorted since their order is a hash's.
 */
export function firewallText(tool: 'iptables' | 'ip6tables', setPrefix: string): string {
  const ours = (text: string) => text.split('\n').filter((line) => /SLUICE|sluice/.test(line));
  const sets = sh('ipset', 'save').split('\n').filter((line) => line.split(' ')[1]?.startsWith(setPrefix)).map((line) => line.replace(/ initval \S+/, '')).sort();
  return [...ours(sh(`${tool}-save`, '-t', 'filter')), ...ours(sh(`${tool}-save`, '-t', 'nat')), ...sets].join('\n');
}

/** Passes commands to the real runner and keeps them, to assert what was written. */
export class TapRunner implements CommandRunner {
  readonly calls: { commandLine: string; input?: string }[] = [];

  constructor(private readonly inner: CommandRunner) {}

  run(command: string, args: readonly string[], input?: string): Promise<string> {
    const commandLine = [command, ...args].join(' ');
    this.calls.push(input === undefined ? { commandLine } : { commandLine, input });
    return this.inner.run(command, args, input);
  }
}
