/**
 * `ip -batch -` input through one long-lived `ip -oneline -batch -`, so a
 * batch costs a write to a pipe instead of a process: about 2 ms less per
 * veth, and no fork holding the event loop during Docker's calls.
 *
 * ip is silent on success, so each batch ends with a marker line whose output
 * says the batch before it is done; ip stops at the first failure and exits,
 * as a fresh run would. ip also caches link indexes by name for its whole
 * life, stale once another process deletes and re-creates a link of that
 * name. So a batch that did not finish is run again by a fresh process, whose
 * outcome (and error) is the one reported, and the next batch gets a new
 * session.
 *
 * (Not ipset: its interactive mode keeps parser state past a failed line, so
 * a `create` after one can make a set of the failed line's type.)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { CommandRunner } from './command-runner';

const DEFAULT_TIMEOUT_MS = 30_000;
/** lo is index 1 in every network namespace, and -oneline prints it on one line. */
const MARKER = 'link show dev lo';
const MARKER_OUTPUT = /^1: lo[:@]/;

class IpSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private stdout = '';
  /** Per batch sent and not done: called with whether all its lines were done. */
  private readonly waiting: ((finished: boolean) => void)[] = [];
  dead = false;

  constructor(private readonly timeoutMs: number) {
    this.child = spawn('ip', ['-oneline', '-batch', '-'], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    // Neither the child nor its pipes keep the agent alive: its exit closes stdin, and ip exits on EOF.
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    this.child.stderr.resume(); // what failed, the fresh run tells
    this.child.stdout.on('data', (chunk: Buffer) => this.read(chunk.toString()));
    this.child.stdin.on('error', () => this.die());
    this.child.on('error', () => this.die());
    this.child.on('close', () => this.die());
  }

  /** Resolves with whether every line of the batch was done. */
  run(input: string): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.die(), this.timeoutMs);
      this.waiting.push((finished) => {
        clearTimeout(timer);
        resolve(finished);
      });
      this.child.stdin.write(`${input.endsWith('\n') ? input : `${input}\n`}${MARKER}\n`);
    });
  }

  private read(text: string): void {
    this.stdout += text;
    let newline: number;
    while ((newline = this.stdout.indexOf('\n')) >= 0) {
      const line = this.stdout.slice(0, newline);
      this.stdout = this.stdout.slice(newline + 1);
      if (MARKER_OUTPUT.test(line)) this.waiting.shift()?.(true);
    }
  }

  /** Ends the session: its unfinished batches are run again fresh, later ones get a new session. */
  die(): void {
    if (this.dead) return;
    this.dead = true;
    this.child.kill('SIGKILL');
    for (const done of this.waiting.splice(0)) done(false);
  }
}

/** A CommandRunner that sends `ip -batch -` to a session, everything else to `fresh`. */
export class IpSessionRunner implements CommandRunner {
  private session: IpSession | undefined;

  constructor(
    private readonly fresh: CommandRunner,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  async run(command: string, args: readonly string[], input?: string): Promise<string> {
    if (command !== 'ip' || args.join(' ') !== '-batch -' || input === undefined) return this.fresh.run(command, args, input);
    if (this.session === undefined || this.session.dead) this.session = new IpSession(this.timeoutMs);
    const session = this.session;
    if (await session.run(input)) return '';
    // Not finished: a new session next time (its cache may be stale), and the fresh run's outcome is the truth.
    session.die();
    return this.fresh.run(command, args, input);
  }
}
