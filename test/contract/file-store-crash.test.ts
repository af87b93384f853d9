/**
 * The file store across real processes: a writer killed with SIGKILL at a
 * random moment loses no acknowledged write and leaves a file that parses;
 * two processes racing to create the same keys each win a key exactly once.
 *
 * The children run the real FileStore, compiled by tsc into a temp dir in
 * beforeAll (only file-store/adapter.ts and what it imports, with the build settings).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FileStore } from '../../src/store/file-store/adapter';

jest.setTimeout(60_000);

const repo = resolve(__dirname, '..', '..');
let work = '';
let compiled = '';
let childScript = '';
const running = new Set<ChildProcess>();

const CHILD = `
const { existsSync } = require('node:fs');
const { FileStore } = require(process.argv[2]);
const [, , , path, mode, name, count] = process.argv;
const store = new FileStore(path);
const print = (line) => process.stdout.write(line + '\\n');

// Creates fresh keys forever, four at a time, printing each one acknowledged.
async function crash() {
  for (let i = 0; ; ) {
    const keys = [0, 1, 2, 3].map(() => '/crash/' + name + '/' + String(i++).padStart(7, '0'));
    await Promise.all(keys.map(async (key) => {
      if ((await store.create(key, name)) !== undefined) print(key);
      else throw new Error('fresh key ' + key + ' was not created');
    }));
  }
}

// Once PATH.go exists, tries to create /race/0000.. /race/COUNT-1 (child "b" from the end down),
// printing the keys it won: both win keys only if they ran at the same time.
async function race() {
  print('ready');
  while (!existsSync(path + '.go')) await new Promise((r) => setTimeout(r, 1));
  const order = [...Array(Number(count)).keys()];
  if (name === 'b') order.reverse();
  for (const k of order) {
    const key = '/race/' + String(k).padStart(4, '0');
    if ((await store.create(key, name)) !== undefined) print(key);
  }
  await store.close();
}

(mode === 'crash' ? crash() : race()).catch((err) => {
  process.stderr.write(String((err && err.stack) || err) + '\\n');
  process.exit(1);
});
`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sluice-crash-'));
  compiled = join(work, 'dist');
  const tsconfig = join(work, 'tsconfig.json');
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: join(repo, 'tsconfig.build.json'),
      compilerOptions: {
        rootDir: join(repo, 'src'),
        outDir: compiled,
        typeRoots: [join(repo, 'node_modules/@types')],
        sourceMap: false,
        incremental: false,
      },
      include: [],
      files: [join(repo, 'src/store/file-store/adapter.ts')],
    }),
  );
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', tsconfig], { encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`tsc failed: ${tsc.stdout}${tsc.stderr}`);
  childScript = join(work, 'child.js');
  await writeFile(childScript, CHILD);
});

afterEach(() => {
  // A failed test must not leave its children running.
  for (const child of running) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  running.clear();
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Child {
  process: ChildProcess;
  /** Complete lines printed so far. */
  lines: string[];
  stderr(): string;
  exited: Promise<number | null>;
}

function startChild(...args: string[]): Child {
  const child = spawn(process.execPath, [childScript, join(compiled, 'store/file-store/adapter.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { process: child, lines, stderr: () => stderr, exited };
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('FileStore under kill -9', () => {
  it('keeps every acknowledged create and a file that parses, kill after kill', async () => {
    const path = join(work, 'crash.json');
    let total = 0;
    for (let round = 0; round < 10; round++) {
      const child = startChild(path, 'crash', `round${round}`);
      // Enough writes to be in the middle of things, then a random moment.
      await until(() => child.lines.length >= 10 || child.process.exitCode !== null, 'the first acknowledged creates');
      expect(child.stderr()).toBe('');
      await new Promise((r) => setTimeout(r, Math.random() * 200));
      process.kill(child.process.pid!, 'SIGKILL');
      await child.exited;
      running.delete(child.process);

      const acknowledged = [...child.lines];
      expect(acknowledged.length).toBeGreaterThanOrEqual(10);
      total += acknowledged.length;
      // The raw file is whole JSON, whatever moment the kill hit.
      expect(() => JSON.parse(readFileSync(path, 'utf8')) as unknown).not.toThrow();

      const store = new FileStore(path);
      try {
        const { kvs } = await store.list(`/crash/round${round}/`);
        const stored = new Set(kvs.map((kv) => kv.key));
        const missing = acknowledged.filter((key) => !stored.has(key));
        expect(missing).toEqual([]);
        // And the store takes writes again (a lock the dead child held is broken).
        expect(await store.create(`/after/${round}`, 'ok')).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
    }
    expect(total).toBeGreaterThan(100);
  });

  it('lets two processes racing for the same keys win each key exactly once', async () => {
    const path = join(work, 'race.json');
    const keys = 600; // enough creates that the later starter still finds keys left, on a loaded machine
    const a = startChild(path, 'race', 'a', String(keys));
    const b = startChild(path, 'race', 'b', String(keys));
    await until(() => a.lines.includes('ready') && b.lines.includes('ready'), 'both children ready');
    await writeFile(`${path}.go`, '');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    expect(a.stderr() + b.stderr()).toBe('');
    const [wonByA, wonByB] = [a.lines.slice(1), b.lines.slice(1)];

    // Each won some: they raced rather than one running after the other.
    expect(wonByA.length).toBeGreaterThan(0);
    expect(wonByB.length).toBeGreaterThan(0);
    const both = wonByB.filter((key) => wonByA.includes(key));
    expect(both).toEqual([]);
    expect(wonByA.length + wonByB.length).toBe(keys);

    const file = JSON.parse(await readFile(path, 'utf8')) as { kvs: { key: string; value: string }[] };
    const winner = new Map(file.kvs.map((kv) => [kv.key, kv.value]));
    for (const key of wonByA) expect(winner.get(key)).toBe('a');
    for (const key of wonByB) expect(winner.get(key)).toBe('b');
  });
});
