import { DataplaneError } from '../../../src/errors';
import { CommandError, SpawnRunner, batchInput, batchLine, commandError } from '../../../src/dataplane/linux/command-runner';

// Harmless processes only: the runner's own plumbing, no kernel state.
describe('SpawnRunner', () => {
  const runner = new SpawnRunner();

  it('feeds stdin and returns stdout', async () => {
    await expect(runner.run('cat', [], 'line 1\nline 2\n')).resolves.toBe('line 1\nline 2\n');
  });

  it('runs tools in the C locale, so their messages can be recognised', async () => {
    await expect(runner.run('sh', ['-c', 'echo $LC_ALL'])).resolves.toBe('C\n');
  });

  it('rejects with the command, exit status, stderr and the failing input line', async () => {
    const failing = runner.run('sh', ['-c', 'cat >/dev/null; echo "RTNETLINK answers: File exists" >&2; echo "Command failed -:2" >&2; exit 1'], 'first\nsecond\n');
    await expect(failing).rejects.toThrow(CommandError);
    await expect(failing).rejects.toThrow(
      'sh -c cat >/dev/null; echo "RTNETLINK answers: File exists" >&2; echo "Command failed -:2" >&2; exit 1 failed (exit 1): ' +
        'RTNETLINK answers: File exists; Command failed -:2 (input line 2: second)',
    );
    await expect(failing).rejects.toMatchObject({ failedLine: 2, stderr: 'RTNETLINK answers: File exists\nCommand failed -:2' });
  });

  it('rejects when the command does not exist', async () => {
    await expect(runner.run('/nonexistent/tool', [])).rejects.toThrow(DataplaneError);
  });

  it('kills a command that does not finish in time', async () => {
    await expect(new SpawnRunner(100).run('sleep', ['5'])).rejects.toThrow('no exit within 100 ms');
  });

  it('survives a tool that exits without reading its input', async () => {
    await expect(runner.run('true', [], 'x'.repeat(1 << 20))).resolves.toBe('');
  });
});

describe('commandError', () => {
  it.each([
    ['ip', 'Error: either "to" is duplicate, or "x" is garbage.\nCommand failed -:2', 2],
    ['iptables-restore', "iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 2", 2],
    ['iptables-restore', 'iptables-restore: line 3 failed', 3],
    ['ipset', 'ipset v7.17: Error in line 1: Syntax error: cannot parse bogus', 1],
    ['ipset', 'ipset v7.17: The set with the given name does not exist', undefined],
  ])('finds the failing line in %s output', (tool, stderr, line) => {
    expect(commandError(tool, 'exit 1', stderr, 'one\ntwo\nthree\n').failedLine).toBe(line);
  });
});

describe('batch text', () => {
  it('builds lines from single-argument values and joins them, one command a line', () => {
    expect(batchInput([batchLine`link set ${'slv0123456789a'} mtu ${1450} up`, batchLine`route del ${'10.96.0.0/26'} proto ${252}`])).toBe(
      'link set slv0123456789a mtu 1450 up\nroute del 10.96.0.0/26 proto 252\n',
    );
  });

  it.each(['', 'a b', 'a\tb', 'a\nb', 'a\rb', 'a\0b', 'a"b', "a'b", 'a\\b'])('refuses the argument %j', (value) => {
    expect(() => batchLine`link set ${value} up`).toThrow(DataplaneError);
  });

  it.each(['a\nb', 'a\rb', 'a\0b'])('refuses a line holding %j', (line) => {
    expect(() => batchInput(['link set x up', line])).toThrow(/refusing line/);
  });
});
