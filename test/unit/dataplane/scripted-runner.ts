import { commandError, type CommandError, type CommandRunner } from '../../../src/dataplane/linux/command-runner';

export interface Invocation {
  command: string;
  args: readonly string[];
  input?: string;
}

/** Answers each command from a script: stdout, or a failure as the tool would print it. */
export type Script = (call: Invocation) => string | { fail: string };

/** A CommandRunner for parsing tests: records every process the dataplane would start. */
export class ScriptedRunner implements CommandRunner {
  readonly calls: Invocation[] = [];

  constructor(private readonly script: Script) {}

  run(command: string, args: readonly string[], input?: string): Promise<string> {
    const call = input === undefined ? { command, args } : { command, args, input };
    this.calls.push(call);
    const answer = this.script(call);
    if (typeof answer === 'string') return Promise.resolve(answer);
    const error: CommandError = commandError([command, ...args].join(' '), 'exit 1', answer.fail, input);
    return Promise.reject(error);
  }

  /** Calls as "command arg arg", for compact assertions. */
  get commandLines(): string[] {
    return this.calls.map((c) => [c.command, ...c.args].join(' '));
  }
}
