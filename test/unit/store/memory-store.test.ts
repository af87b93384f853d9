/**
 * What the memory engine does on its own clock, without waiting: lease expiry,
 * lease loss, history limits. The Store behaviour itself is in
 * test/contract/store.contract.test.ts, shared with the file and etcd stores.
 */
import { StoreUnavailableError } from '../../../src/errors';
import { MemoryStore } from '../../../src/store/memory-store';
import { FakeClock, settle } from '../../helpers/fake-clock';
import type { WatchEvent, WatchHandlers } from '../../../src/store/store';

class Recorder implements WatchHandlers {
  events: WatchEvent[] = [];
  resets: string[] = [];
  onEvents(events: WatchEvent[]): void {
    this.events.push(...events);
  }
  onReset(reason: string): void {
    this.resets.push(reason);
  }
}


describe('MemoryStore', () => {
  it('expires a lease TTL seconds after its holder closes, not before', async () => {
    const clock = new FakeClock();
    const holder = new MemoryStore({ clock });
    const peer = holder.connect();
    const lease = await holder.grantLease(10);
    await holder.put('/node', 'alive', lease);
    await clock.advance(60_000); // held: no expiry however long
    expect(await peer.get('/node')).toBeDefined();

    const rec = new Recorder();
    peer.watch('/', (await peer.list('/')).revision + 1, rec);
    await holder.close();
    await clock.advance(9_999);
    expect(await peer.get('/node')).toBeDefined();
    await clock.advance(1);
    expect(await peer.get('/node')).toBeUndefined();
    await settle();
    expect(rec.events).toEqual([{ type: 'delete', key: '/node', modRevision: expect.any(Number) }]);
    await peer.close();
    expect(clock.pending).toBe(0); // no timer left behind once every client is closed
  });

  it('calls onLost once, outside the mutating call, when a lease is lost', async () => {
    const store = new MemoryStore({ clock: new FakeClock() });
    const lease = await store.grantLease(5);
    await store.put('/k', 'v', lease);
    let lost = 0;
    lease.onLost(() => lost++);
    store.engine.expireLease(lease.id);
    expect(lost).toBe(0);
    await settle();
    expect(lost).toBe(1);
    expect(await store.get('/k')).toBeUndefined();
    await expect(store.put('/k', 'v', lease)).rejects.toThrow(StoreUnavailableError);
    let late = 0;
    lease.onLost(() => late++); // registered after the loss: still told
    await settle();
    expect([lost, late]).toEqual([1, 1]);
    await store.close();
  });

  it('resets a watch that starts before the kept history, and replays one that starts inside it', async () => {
    const store = new MemoryStore({ historyLimit: 3 });
    for (let i = 1; i <= 5; i++) await store.put('/k', String(i)); // revisions 1..5, history keeps 3..5
    const early = new Recorder();
    const inside = new Recorder();
    store.watch('/', 2, early);
    store.watch('/', 3, inside);
    await settle();
    expect(early.resets).toEqual([expect.stringMatching(/revision 2 is no longer in the history/)]);
    expect(early.events).toEqual([]);
    expect(inside.events.map((e) => (e.type === 'put' ? e.kv.value : ''))).toEqual(['3', '4', '5']);
    expect(inside.resets).toEqual([]);
    await store.close();
  });

  it('watches from now when the start revision is 0, as etcd does', async () => {
    const store = new MemoryStore();
    await store.put('/old', 'x');
    const rec = new Recorder();
    store.watch('/', 0, rec);
    await store.put('/new', 'y');
    await settle();
    expect(rec.events.map((e) => (e.type === 'put' ? e.kv.key : e.key))).toEqual(['/new']);
    await store.close();
  });

  it('sorts keys by their UTF-8 bytes, as etcd does', async () => {
    const store = new MemoryStore();
    await store.put('/\u{1F600}', 'emoji'); // UTF-16 sorts this first, UTF-8 last
    await store.put('/\uFF61', 'halfwidth');
    expect((await store.list('/')).kvs.map((kv) => kv.value)).toEqual(['halfwidth', 'emoji']);
    await store.close();
  });
});
