// TCP connect prober, run inside a container's network namespace
// (nsenter -t PID -n node prober.js). One JSON command a line on stdin, one JSON reply a line:
//
//   {"cmd":"start","host":"10.96.0.5","port":80,"intervalMs":5,"timeoutMs":300}  -> {"ok":true}
//       starts a connect attempt every intervalMs, each given up after timeoutMs
//   {"cmd":"stop"}  -> {"probes":[[startMs, durationMs, outcome], …]} once every attempt has ended
//   {"cmd":"stop","until":"open","settleMs":300,"maxMs":5000}
//       the same, but first waits (up to maxMs) for an attempt that ended as `until` says
//       (see outcome.ts), then goes on probing settleMs longer
//
// outcome: open (connected), refused (RST), timeout (no answer: dropped), or an errno code.
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { matches, type Want } from './outcome';

type Record = [number, number, string];

interface Stop {
  cmd: 'stop';
  until?: Want;
  settleMs?: number;
  maxMs?: number;
}

interface Start {
  cmd: 'start';
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function attempt(host: string, port: number, timeoutMs: number): Promise<Record> {
  const started = nowMs();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // A reset leaves no TIME_WAIT behind, whatever the rate.
      if (outcome === 'open') socket.resetAndDestroy();
      else socket.destroy();
      resolve([started, nowMs() - started, outcome]);
    };
    socket.once('connect', () => finish('open'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? 'error')));
    // setImmediate: a connect the kernel finished while this loop was busy is taken first.
    const timer = setTimeout(() => setImmediate(() => finish('timeout')), timeoutMs);
  });
}

let interval: NodeJS.Timeout | undefined;
let pending: Promise<Record>[] = [];
let finished: Record[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function stop(command: Stop): Promise<Record[]> {
  const { until, settleMs = 0, maxMs = 0 } = command;
  if (until !== undefined) {
    const deadline = nowMs() + maxMs;
    while (!finished.some(([, , outcome]) => matches(outcome, until)) && nowMs() < deadline) await sleep(5);
    await sleep(settleMs);
  }
  clearInterval(interval);
  const probes = await Promise.all(pending);
  pending = [];
  finished = [];
  return probes;
}

function reply(value: object): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function handle(line: string): Promise<void> {
  const command = JSON.parse(line) as Start | Stop;
  if (command.cmd === 'start') {
    clearInterval(interval);
    pending = [];
    finished = [];
    const { host, port, intervalMs, timeoutMs } = command;
    const probe = (): void => {
      pending.push(attempt(host, port, timeoutMs).then((record) => (finished.push(record), record)));
    };
    probe();
    interval = setInterval(probe, intervalMs);
    reply({ ok: true });
  } else {
    reply({ probes: await stop(command) });
  }
}

let queue = Promise.resolve();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    queue = queue.then(() => handle(line)).catch((err: unknown) => reply({ error: String(err) }));
  })
  .on('close', () => process.exit(0));
