/**
 * `ip -batch -` input through one long-lived `ip -oneline -batch -`, so a
 * batch costs a write to a pipe instead of a process: about 2 ms less per
 * veth, and no fork holding the event loop during Docker's calls.
 *
 * ip is silent on success, so each batch ends with a marker line whose output
 * says the batch before it is done. At the first failure ip says which line
 * ("Command failed -:N", counted over the session) and exits. ip also caches
 * link indexes by name for its whole life, stale once another process
 * deletes and re-creates a link of that name. So the lines from the failed
 * one on are run again by a fresh process, whose outcome is the one reported,
 * as if one process had run the batch; the next batch gets a new session.
 *
 * (Not ipset: its interactive mode keeps parser state past a failed line, so
 * a `create` after one can make a set of the failed line's type.)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError, type CommandRunner } from './command-runner';

const DEFAULT_TIMEOUT_MS = 30_000;
/** lo is index 1 in every network namespace, and -oneline prints it on one line. */
const MARKER = 'link show dev lo';
const MARKER_OUTPUT = /^1: lo[:@]/;
const FAILED = /^Command failed -:(\d+)$/m;

interface Batch {
  /** The session's line number of the batch's first line, and how many lines it has. */
  first: number;
  lines: number;
  /** With how many of its lines are known done: all, or those before the one that failed. */
  done(linesDone: number): void;
}

class IpSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private stdout = '';
  private stderr = '';
  private sent = 0;
  private readonly waiting: Batch[] = [];
  dead = false;

  constructor(private readonly timeoutMs: number) {
    this.child = spawn('ip', ['-oneline', '-batch', '-'], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] });
    // Neither the child nor its pipes keep the agent alive: its exit closes stdin, and ip exits on EOF.
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    this.child.stdout.on('data', (chunk: Buffer) => this.readStdout(chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    // A write after ip has exited fails; 'close' follows, once all it printed is read.
    this.child.stdin.on('error', () => undefined);
    this.child.on('error', () => this.die());
    this.child.on('close', () => this.die());
  }

  /** Resolves with how many lines of the batch are known done: all of them when it finished. */
  run(lines: readonly string[]): Promise<number> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.die(), this.timeoutMs);
      this.waiting.push({
        first: this.sent + 1,
        lines: lines.length,
        done: (linesDone) => {
          clearTimeout(timer);
          resolve(linesDone);
        },
      });
      this.sent += lines.length + 1;
      this.child.stdin.write(`${lines.join('\n')}\n${MARKER}\n`);
    });
  }

  private readStdout(text: string): void {
    this.stdout += text;
    let newline: number;
    while ((newline = this.stdout.indexOf('\n')) >= 0) {
      const line = this.stdout.slice(0, newline);
      this.stdout = this.stdout.slice(newline + 1);
      if (MARKER_OUTPUT.test(line)) {
        const batch = this.waiting.shift();
        batch?.done(batch.lines);
      }
    }
  }

  /** Ends the session: the batch ip failed in learns how far it got; those after it, that none of theirs ran. */
  die(): void {
    if (this.dead) return;
    this.dead = true;
    this.child.kill('SIGKILL');
    const failed = FAILED.exec(this.stderr)?.[1];
    for (const batch of this.waiting.splice(0)) {
      const at = failed === undefined ? undefined : Number(failed) - batch.first;
      batch.done(at !== undefined && at >= 0 && at < batch.lines ? at : 0);
    }
  }
}

/**
 * A CommandRunner that sends `ip -batch -` to a session and everything else to `fresh`. Only a
 * batch that stopped is run again, from the line it stopped at: a session that was killed (a
 * timeout) says nothing of how far it got, so its batch is run again whole.
 */
export class IpSessionRunner implements CommandRunner {
  private session: IpSession | undefined;

  constructor(
    private readonly fresh: CommandRunner,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  async run(command: string, args: readonly string[], input?: string): Promise<string> {
    if (command !== 'ip' || args.join(' ') !== '-batch -' || input === undefined) return this.fresh.run(command, args, input);
    const lines = input.split('\n').filter((line) => line !== '');
    if (this.session === undefined || this.session.dead) this.session = new IpSession(this.timeoutMs);
    const session = this.session;
    const linesDone = await session.run(lines);
    if (linesDone === lines.length) return '';
    // Stopped: a new session next time (its cache may be stale), and the rest run by a fresh process.
    session.die();
    const rest = lines.slice(linesDone);
    try {
      return await this.fresh.run(command, args, `${rest.join('\n')}\n`);
    } catch (err) {
      // Numbered as in the whole batch, as a caller reads them.
      if (!(err instanceof CommandError) || err.failedLine === undefined) throw err;
      throw new CommandError(err.message, err.stderr, err.failedLine + linesDone);
    }
  }
}
