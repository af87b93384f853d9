/**
 * `ipset restore -exist` shared by both families' firewalls: what they ask for in one turn of the
 * event loop goes to one process. A dual-stack container's start changes both families' sets at
 * once, and a second process beside the first cost its Join ~3 ms on two cores.
 */
import { batchInput, type CommandRunner } from './command-runner';

interface Waiting {
  lines: readonly string[];
  resolve(): void;
  reject(err: unknown): void;
}

export class IpsetRestorer {
  private waiting: Waiting[] = [];

  constructor(private readonly runner: CommandRunner) {}

  /** Resolves once the lines are in the kernel; a failure is every caller's of that process (ipset restore stops at it). */
  restore(lines: readonly string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.waiting.length === 0) setImmediate(() => this.flush());
      this.waiting.push({ lines, resolve, reject });
    });
  }

  private flush(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.runner.run('ipset', ['restore', '-exist'], batchInput(batch.flatMap((w) => w.lines))).then(
      () => batch.forEach((w) => w.resolve()),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    );
  }
}
