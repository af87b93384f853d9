// Reachability probes from a container of a lab, for the e2e tests. A probe tells a drop (nothing
// answered in time, as a policy's DROP does) from an error (refused, no such container, no such
// tool…), so a test that expects "denied" cannot pass on a typo or a crash.
import { readFileSync } from 'node:fs';
import type { Lab, RunResult } from './lab';

/** What a probe saw: an answer, nothing within its timeout, or an error (with its output). */
export type Reach = 'ok' | 'timed out' | `error: ${string}`;

/** busybox timeout kills with SIGTERM (128 + 15); GNU timeout exits 124. */
const TIMEOUT_EXITS = new Set([124, 143]);

function failure(r: RunResult): Reach {
  return `error: exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' / ')}`;
}

/** What a command run under `timeout` saw: it succeeded, was cut off by the timeout, or failed otherwise. */
export function reachOf(r: RunResult): Reach {
  if (r.code === 0) return 'ok';
  return TIMEOUT_EXITS.has(r.code) ? 'timed out' : failure(r);
}

/** GET http://to:port/PATH from `container` on `host` (a POST of `postData`, when given); `page` is what came back. */
export async function fetchFrom(
  lab: Lab,
  host: string,
  container: string,
  to: string,
  port = 80,
  timeoutS = 2,
  opts: { path?: string; postData?: string } = {},
): Promise<{ reach: Reach; page: string }> {
  const post = opts.postData === undefined ? [] : ['--post-data', opts.postData];
  const r = await lab.docker(host, 'exec', container, 'timeout', String(timeoutS), 'wget', '-q', '-O-', ...post, `http://${to}:${port}/${opts.path ?? ''}`);
  return { reach: reachOf(r), page: r.code === 0 ? r.stdout : '' };
}

/**
 * `nslookup name [server]` in a container: the addresses answered, sorted, or
 * how it failed ("NXDOMAIN", "SERVFAIL", …, "timed out", or the error).
 */
export async function lookup(lab: Lab, host: string, container: string, name: string, server?: string): Promise<string[] | string> {
  const r = await lab.docker(host, 'exec', container, 'timeout', '5', 'nslookup', name, ...(server ? [server] : []));
  // The server's own line is "Address:\tIP:53"; answers are "Address: IP".
  const addresses = [...r.stdout.matchAll(/^Address:\s+(\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]!);
  // busybox asks for A and AAAA: an A answer counts even when AAAA failed.
  if (addresses.length > 0) return addresses.sort();
  const failure = /can't find [^:]+: (\w+)/.exec(r.stdout + r.stderr)?.[1];
  if (failure) return failure;
  if (/timed out|no servers could be reached/.test(r.stdout + r.stderr)) return 'timed out';
  return `error: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`;
}

/** Whether `container` on `host` gets the page of to:port (`reach` of fetchFrom). */
export async function connects(lab: Lab, host: string, container: string, to: string, port = 80): Promise<Reach> {
  return (await fetchFrom(lab, host, container, to, port)).reach;
}

/** One echo request from `container` on `host` (of `size` payload bytes, when given). */
export async function pings(lab: Lab, host: string, container: string, to: string, opts: { timeoutS?: number; size?: number } = {}): Promise<Reach> {
  const size = opts.size === undefined ? [] : ['-s', String(opts.size)];
  const r = await lab.docker(host, 'exec', container, 'ping', '-c1', '-W', String(opts.timeoutS ?? 1), ...size, to);
  if (r.code === 0) return 'ok';
  return r.code === 1 && /\b1 packets transmitted, 0 packets received\b/.test(r.stdout) ? 'timed out' : failure(r);
}

/** A probe script's output and the window it ran in, in seconds since boot (the kernel's clock, shared with the host). */
export interface Windowed {
  stdout: string;
  from: number;
  to: number;
}

/** Now, on the clock of Windowed (the test runs on the lab's machine). */
export function secondsSinceBoot(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

/** Runs `script` with sh in `container`, noting the time before and after it. */
export async function windowed(lab: Lab, host: string, container: string, script: string): Promise<Windowed> {
  const stamp = "awk '{ print $1 }' /proc/uptime";
  const r = await lab.docker(host, 'exec', container, 'sh', '-c', `${stamp}; ${script}; ${stamp}`);
  const lines = r.stdout.trim().split('\n');
  if (r.code !== 0 || lines.length < 2) throw new Error(`probe in ${container} on ${host}: ${failure(r)}`);
  return { from: Number(lines[0]), to: Number(lines.at(-1)), stdout: lines.slice(1, -1).join('\n') };
}

/** `times` fetches of http://to/ in a row, each given `timeoutS`: how many ended ok, timed out or otherwise. */
export async function fetchesDuring(
  lab: Lab,
  host: string,
  container: string,
  to: string,
  times: number,
  timeoutS: number,
): Promise<{ ok: number; timedOut: number; errors: number; from: number; to: number }> {
  const script =
    `ok=0; late=0; err=0; for i in $(seq ${times}); do timeout ${timeoutS} wget -q -O- http://${to}/ >/dev/null 2>&1; ` +
    `case $? in 0) ok=$((ok+1));; ${[...TIMEOUT_EXITS].join('|')}) late=$((late+1));; *) err=$((err+1));; esac; sleep 0.1; done; echo "$ok $late $err"`;
  const { stdout, from, to: end } = await windowed(lab, host, container, script);
  const [ok, timedOut, errors] = stdout.trim().split(' ').map(Number);
  return { ok: ok!, timedOut: timedOut!, errors: errors!, from, to: end };
}
