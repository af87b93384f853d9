/**
 * IpSessionRunner against the real `ip`, inside the throwaway namespace of
 * scripts/in-netns.sh: batches through one long-lived process, with the same
 * outcome as a fresh `ip -batch -` each, stale link indexes included.
 */
import { CommandError, SpawnRunner, batchInput, type CommandRunner } from '../../src/dataplane/linux/command-runner';
import { IpSessionRunner } from '../../src/dataplane/linux/ip-session';
import { json, sh } from './kernel';
import { assertThrowawayNetns } from './netns-guard';

assertThrowawayNetns();
jest.setTimeout(30_000);

/** Counts the processes started for batches: the session's one, and every fresh run. */
class CountingRunner implements CommandRunner {
  fresh = 0;
  private readonly spawn = new SpawnRunner();

  run(command: string, args: readonly string[], input?: string): Promise<string> {
    this.fresh++;
    return this.spawn.run(command, args, input);
  }
}

const LINKS = ['it-sess0', 'it-sess1', 'it-sess2'];

function removeLinks(): void {
  for (const link of LINKS) {
    try {
      sh('ip', 'link', 'del', link);
    } catch {
      // not there: nothing to remove
    }
  }
}

function routesVia(dev: string): string[] {
  return json<{ dst: string }[]>('ip', '-j', 'route', 'show', 'dev', dev).map((r) => r.dst);
}

const batch = (runner: CommandRunner, lines: string[]) => runner.run('ip', ['-batch', '-'], batchInput(lines));

beforeEach(removeLinks);
afterAll(removeLinks);

describe('IpSessionRunner', () => {
  it('runs batches, concurrent ones too, through one process', async () => {
    const counting = new CountingRunner();
    const runner = new IpSessionRunner(counting);
    await batch(runner, ['link add it-sess0 type veth peer name it-sess1', 'link set it-sess0 up']);
    await Promise.all([
      batch(runner, ['route replace 10.250.0.1/32 dev it-sess0']),
      batch(runner, ['route replace 10.250.0.2/32 dev it-sess0']),
      batch(runner, ['route replace 10.250.0.3/32 dev it-sess0']),
    ]);
    expect(routesVia('it-sess0').sort()).toEqual(['10.250.0.1', '10.250.0.2', '10.250.0.3']);
    expect(counting.fresh).toBe(0);
  });

  it('fails a batch as a fresh run does, naming the line, and carries on with a new session', async () => {
    const counting = new CountingRunner();
    const runner = new IpSessionRunner(counting);
    await batch(runner, ['link add it-sess0 type veth peer name it-sess1']);
    const failure = batch(runner, ['link set it-sess0 up', 'route replace 10.250.0.9/32 dev it-no-such']);
    await expect(failure).rejects.toThrow(CommandError);
    await expect(failure).rejects.toMatchObject({ failedLine: 2 });
    expect(counting.fresh).toBe(1);
    await batch(runner, ['route replace 10.250.0.9/32 dev it-sess0']);
    expect(routesVia('it-sess0')).toEqual(['10.250.0.9']);
    expect(counting.fresh).toBe(1);
  });

  it('runs again only the lines from the one that failed: a link the batch made is not made twice', async () => {
    const counting = new CountingRunner();
    const runner = new IpSessionRunner(counting);
    const failure = batch(runner, ['link add it-sess0 type veth peer name it-sess1', 'route replace 10.250.0.9/32 dev it-no-such']);
    await expect(failure).rejects.toMatchObject({ failedLine: 2, stderr: expect.stringContaining('it-no-such') });
    expect(counting.fresh).toBe(1);
    expect(json<{ ifname: string }[]>('ip', '-j', 'link', 'show', 'it-sess0')).toHaveLength(1);
  });

  it('gets a link right that another process deleted and made again under the same name', async () => {
    const counting = new CountingRunner();
    const runner = new IpSessionRunner(counting);
    await batch(runner, ['link add it-sess0 type veth peer name it-sess1', 'link set it-sess0 up', 'route replace 10.250.0.1/32 dev it-sess0']);
    sh('ip', 'link', 'del', 'it-sess0');
    sh('ip', 'link', 'add', 'it-sess2', 'type', 'bridge'); // takes the next index, so the new link's differs
    sh('ip', 'link', 'add', 'it-sess0', 'type', 'veth', 'peer', 'name', 'it-sess1');
    await batch(runner, ['link set it-sess0 up', 'route replace 10.250.0.1/32 dev it-sess0']);
    expect(routesVia('it-sess0')).toEqual(['10.250.0.1']);
    // The session's cached index was stale: the batch was done again by a fresh process.
    expect(counting.fresh).toBe(1);
  });
});

