/**
 * The one place the dataplane starts processes. Batched tools (`ip -batch -`,
 * `bridge -batch -`, `iptables-restore`, `ipset restore`) get their input on
 * stdin; a failure becomes a CommandError naming the command, its stderr and,
 * when the tool reports one, the input line that failed.
 */
import { spawn } from 'node:child_process';
import { DataplaneError } from '../../errors';

export interface CommandRunner {
  /** Resolves with stdout when the command exits 0; rejects with CommandError otherwise. */
  run(command: string, args: readonly string[], input?: string): Promise<string>;
}

export class CommandError extends DataplaneError {
  constructor(
    message: string,
    readonly stderr: string,
    /** 1-based input line the tool said failed, if it said. */
    readonly failedLine: number | undefined,
  ) {
    super(message);
  }
}

/** Ends a command early in batch input (`ip -batch`, `bridge -batch`, `ipset restore`, `iptables-restore`). */
const LINE_BREAK = /[\n\r\0]/;
/** Ends or splits an argument: blanks, and the quotes and escapes these tools parse. */
const ARGUMENT_BREAK = /[\s"'\\\0]/;

function refuse(what: string, value: string): never {
  throw new DataplaneError(`refusing ${what} ${JSON.stringify(value)} in batch input: it would split a command`);
}

/**
 * Builds one line of batch input, every interpolated value checked to be
 * exactly one argument. The last guard against injected commands: values are
 * validated long before, but a line built here cannot smuggle another in.
 *
 * @example batchLine`link set ${ifname} mtu ${mtu} up`
 */
export function batchLine(text: TemplateStringsArray, ...values: readonly (string | number)[]): string {
  return text.reduce((line, part, i) => {
    const value = String(values[i - 1]);
    if (value === '' || ARGUMENT_BREAK.test(value)) refuse('argument', value);
    return line + value + part;
  });
}

/** Joins lines into a batch tool's input; a line holding a line break would be two commands. */
export function batchInput(lines: readonly string[]): string {
  for (const line of lines) if (LINE_BREAK.test(line)) refuse('line', line);
  return lines.join('\n') + '\n';
}

/** A tool stuck on a lock (xtables, RTNL) must not hang a Docker request forever. */
const DEFAULT_TIMEOUT_MS = 30_000;

export class SpawnRunner implements CommandRunner {
  constructor(private readonly timeoutMs = DEFAULT_TIMEOUT_MS) {}

  run(command: string, args: readonly string[], input?: string): Promise<string> {
    const commandLine = [command, ...args].join(' ');
    return new Promise((resolve, reject) => {
      // LC_ALL=C: callers recognise "File exists" and "Cannot find device" in stderr.
      const child = spawn(command, args, {
        env: { ...process.env, LC_ALL: 'C' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      // The tool may exit before reading all input (e.g. on an early parse error); its exit status says why.
      child.stdin.on('error', () => undefined);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new CommandError(`${commandLine}: ${err.message}`, '', undefined));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) {
          resolve(Buffer.concat(stdout).toString());
          return;
        }
        const errText = Buffer.concat(stderr).toString().trim();
        const status = timedOut ? `no exit within ${this.timeoutMs} ms` : signal ? `killed by ${signal}` : `exit ${code}`;
        reject(commandError(commandLine, status, errText, input));
      });
      child.stdin.end(input ?? '');
    });
  }
}

/**
 * ip/bridge say "Command failed -:N", iptables-restore "Error occurred at
 * line: N" or "line N failed", ipset "Error in line N".
 */
const FAILED_LINE = /(?:Command failed -:|\bline:? )(\d+)/i;

export function commandError(commandLine: string, status: string, stderr: string, input?: string): CommandError {
  const lineMatch = FAILED_LINE.exec(stderr);
  const failedLine = lineMatch?.[1] !== undefined ? Number(lineMatch[1]) : undefined;
  const inputLine = failedLine !== undefined ? input?.split('\n')[failedLine - 1] : undefined;
  const detail = inputLine !== undefined ? ` (input line ${failedLine}: ${inputLine})` : '';
  const message = `${commandLine} failed (${status}): ${stderr.replace(/\s*\n\s*/g, '; ') || 'no error output'}${detail}`;
  return new CommandError(message, stderr, failedLine);
}
