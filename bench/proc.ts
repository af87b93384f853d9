// Processes the bench starts: one-shot commands with a timeout, and long-running helpers
// (iperf3 servers, ip monitor, probers) that are tracked so each one is stopped by its pid.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Finished {
  stdout: string;
  stderr: string;
  code: number;
  /** nowMs() when the process had exited and its output was read. */
  endedAt: number;
}

/** Runs a command to completion; rejects only on timeout or if it cannot start. */
export function run(cmd: string, args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = process.env): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const options = { timeout: timeoutMs, killSignal: 'SIGKILL' as const, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' as const, env };
    execFile(cmd, args, options, (err, stdout, stderr) => {
      const endedAt = nowMs();
      if (err == null) return resolve({ stdout, stderr, code: 0, endedAt });
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number') return resolve({ stdout, stderr, code, endedAt });
      reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
    });
  });
}

/** Like run(), but throws with stderr on a non-zero exit. */
export async function runOk(cmd: string, args: string[], timeoutMs?: number, env?: NodeJS.ProcessEnv): Promise<Finished> {
  const r = await run(cmd, args, timeoutMs, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r;
}

const running = new Set<Background>();

/** A long-running child whose stdout is read line by line. */
export class Background {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;
  private readonly waiters: ((line: string) => void)[] = [];
  private readonly queued: string[] = [];
  stderr = '';

  constructor(
    readonly what: string,
    cmd: string,
    args: string[],
    private readonly onLine?: (line: string) => void,
  ) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this);
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
    this.child.once('error', (err) => (this.stderr += `cannot start: ${err.message}`));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (this.onLine) return this.onLine(line);
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.queued.push(line);
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends one line and resolves with the next line it prints (a request/reply helper). */
  request(line: string, timeoutMs: number): Promise<string> {
    this.child.stdin.write(`${line}\n`);
    const queued = this.queued.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.what}: no reply within ${timeoutMs} ms ${this.stderr.trim()}`)), timeoutMs);
      this.waiters.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  /** TERM, then KILL after a grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    running.delete(this);
    if (this.alive && this.child.pid !== undefined) {
      process.kill(this.child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (this.alive && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
      }, 2000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** Stops every helper still running (end of a scenario, or of the bench). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((b) => b.stop()));
}
