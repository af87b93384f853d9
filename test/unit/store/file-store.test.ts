/**
 * What the file store does on its injected clock, without waiting: lease
 * expiry. The Store behaviour itself, and the file store's crash and race
 * safety, are in test/contract/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../../src/store/file-store/adapter';
import { FakeClock } from '../../helpers/fake-clock';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-file-store-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('expires a lease TTL seconds after its holder closes on the clock, for every process on the file', async () => {
    const clock = new FakeClock();
    const path = join(dir, 'state.json');
    const holder = new FileStore(path, { clock });
    const peer = new FileStore(path, { clock });
    const lease = await holder.grantLease(10);
    await holder.put('/node', 'alive', lease);
    await holder.close(); // stops the keepalives, like a crash

    await clock.advance(9_999);
    expect((await peer.get('/node'))?.value).toBe('alive');
    await clock.advance(1);
    expect(await peer.get('/node')).toBeUndefined();
    await peer.close();
  });
});
