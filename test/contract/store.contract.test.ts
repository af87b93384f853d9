/**
 * One contract for every Store, run against the memory store, the file store
 * (a temp file) and the etcd store (a real etcd from test/helpers/etcd.ts).
 * Each test gets a fresh key prefix, so the etcd instance is shared; revisions
 * are only ever compared with revisions the same test read.
 *
 * "Clients" are several Store objects on the same data: two MemoryStores on
 * one engine, two FileStores on one file, two EtcdStores on one etcd. That is
 * how the agent and the CLI (or two agents) share a store.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { BadRequestError, StoreUnavailableError } from '../../src/errors';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { FileStore } from '../../src/store/file-store/adapter';
import { MemoryStore } from '../../src/store/memory-store';
import { DEFAULT_STORE_URL, openStore } from '../../src/store/open-store';
import type { Store, WatchEvent, WatchHandlers } from '../../src/store/store';
import { freePort, startEtcd, type EtcdInstance, type EtcdOptions } from '../helpers/etcd';

jest.setTimeout(30_000);

interface Backing {
  /** A new client on this test's data. */
  open(): Store;
  dispose(): Promise<void>;
}

/** Collects what a watch delivers. */
class Recorder implements WatchHandlers {
  readonly events: WatchEvent[] = [];
  readonly batches: { events: WatchEvent[]; revision: number }[] = [];
  readonly resets: string[] = [];

  constructor(private readonly prefix = '') {}

  onEvents(events: WatchEvent[], revision: number): void {
    this.events.push(...events);
    this.batches.push({ events, revision });
  }

  onReset(reason: string): void {
    this.resets.push(reason);
  }

  /** "put KEY=VALUE" / "delete KEY", keys without the test's prefix. */
  get summary(): string[] {
    return this.events.map((e) =>
      e.type === 'put' ? `put ${e.kv.key.slice(this.prefix.length)}=${e.kv.value}` : `delete ${e.key.slice(this.prefix.length)}`,
    );
  }

  async until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.summary)}, resets: ${JSON.stringify(this.resets)}`);
      }
      await sleep(10);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function modRevisionOf(event: WatchEvent): number {
  return event.type === 'put' ? event.kv.modRevision : event.modRevision;
}

function storeContract(name: string, backingFactory: () => Promise<Backing>): void {
  describe(`Store contract: ${name}`, () => {
    let backing: Backing | undefined;
    let clients: Store[] = [];
    let p = '';

    beforeEach(async () => {
      backing = await backingFactory();
      clients = [];
      // Under /sluice/: all an etcd user limited to Sluice's prefix may touch.
      p = `/sluice/contract/${randomBytes(4).toString('hex')}/`;
    });

    afterEach(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await backing?.dispose();
      backing = undefined;
    });

    function open(): Store {
      if (!backing) throw new Error('no backing store');
      const client = backing.open();
      clients.push(client);
      return client;
    }

    it('gets and lists values with their revisions, sorted by key, only under the prefix', async () => {
      const s = open();
      expect(await s.get(`${p}missing`)).toBeUndefined();
      await s.put(`${p}b`, 'B');
      await s.put(`${p}ab/1`, 'AB1');
      await s.put(`${p}a/2`, 'A2');
      await s.put(`${p}a/1`, 'A1');
      await s.put(`${p.slice(0, -1)}-sibling/a/1`, 'not under the prefix');

      const one = await s.get(`${p}a/1`);
      expect(one).toEqual({ key: `${p}a/1`, value: 'A1', modRevision: expect.any(Number) });

      const under = await s.list(`${p}a/`);
      expect(under.kvs.map((kv) => [kv.key.slice(p.length), kv.value])).toEqual([
        ['a/1', 'A1'],
        ['a/2', 'A2'],
      ]);
      const all = await s.list(p);
      expect(all.kvs.map((kv) => kv.key.slice(p.length))).toEqual(['a/1', 'a/2', 'ab/1', 'b']);
      expect(all.kvs.find((kv) => kv.key === `${p}a/1`)?.modRevision).toBe(one?.modRevision);
      expect(all.revision).toBeGreaterThanOrEqual(Math.max(...all.kvs.map((kv) => kv.modRevision)));
      expect((await s.list(`${p}nothing/`)).kvs).toEqual([]);

      // Each write is a new, higher revision.
      const before = (await s.get(`${p}b`))!.modRevision;
      await s.put(`${p}b`, 'B2');
      const after = await s.get(`${p}b`);
      expect(after?.value).toBe('B2');
      expect(after!.modRevision).toBeGreaterThan(before);
    });

    it('sorts keys by their UTF-8 bytes, as etcd does', async () => {
      const s = open();
      await s.put(`${p}\u{1F600}`, 'emoji'); // UTF-16 order would put this first
      await s.put(`${p}\uFF61`, 'halfwidth');
      await s.put(`${p}z`, 'ascii');
      expect((await s.list(p)).kvs.map((kv) => kv.value)).toEqual(['ascii', 'halfwidth', 'emoji']);
    });

    it('creates a key only if it is absent, telling the revision it wrote', async () => {
      const s = open();
      const first = await s.create(`${p}k`, 'first');
      expect(first).toBe((await s.get(`${p}k`))?.modRevision);
      expect(await s.create(`${p}k`, 'second')).toBeUndefined();
      expect((await s.get(`${p}k`))?.value).toBe('first');
      await s.delete(`${p}k`);
      const third = await s.create(`${p}k`, 'third');
      expect(third).toBeGreaterThan(first!);
      expect(third).toBe((await s.get(`${p}k`))?.modRevision);
      expect((await s.get(`${p}k`))?.value).toBe('third');
    });

    it('lets exactly one of 50 concurrent creates of one key win, across two clients', async () => {
      const a = open();
      const b = open();
      const key = `${p}contended`;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).create(key, `v${i}`)),
      );
      const won = results.filter((revision) => revision !== undefined);
      expect(won).toHaveLength(1);
      const winner = `v${results.indexOf(won[0])}`;
      expect((await a.get(key))?.value).toBe(winner);
      expect((await b.get(key))?.value).toBe(winner);
    });

    it('compares and swaps on the modRevision', async () => {
      const s = open();
      await s.put(`${p}k`, 'v1');
      const v1 = (await s.get(`${p}k`))!;
      expect(await s.compareAndSwap(`${p}k`, 'v2', v1.modRevision)).toBe(true);
      const v2 = (await s.get(`${p}k`))!;
      expect(v2.value).toBe('v2');
      expect(v2.modRevision).toBeGreaterThan(v1.modRevision);
      // The stale revision no longer matches.
      expect(await s.compareAndSwap(`${p}k`, 'v3', v1.modRevision)).toBe(false);
      expect((await s.get(`${p}k`))?.value).toBe('v2');
      expect(await s.compareAndSwap(`${p}absent`, 'x', v2.modRevision)).toBe(false);
      expect(await s.get(`${p}absent`)).toBeUndefined();
      // As etcd: an absent key's modRevision is 0.
      expect(await s.compareAndSwap(`${p}absent`, 'x', 0)).toBe(true);
      expect((await s.get(`${p}absent`))?.value).toBe('x');
    });

    it('puts several keys in one revision only if every expected key is unchanged', async () => {
      const s = open();
      await s.put(`${p}guard`, 'g1');
      const guard = (await s.get(`${p}guard`))!;
      const puts = [
        { key: `${p}a`, value: 'A' },
        { key: `${p}guard`, value: 'g2' },
      ];
      // A stale revision, or a key expected absent that exists: nothing is written.
      expect(await s.putIfUnchanged([{ key: `${p}guard`, modRevision: guard.modRevision + 1 }], puts)).toBe(false);
      expect(await s.putIfUnchanged([{ key: `${p}guard`, modRevision: guard.modRevision }, { key: `${p}guard`, modRevision: 0 }], puts)).toBe(false);
      expect(await s.get(`${p}a`)).toBeUndefined();
      expect((await s.get(`${p}guard`))?.value).toBe('g1');

      const expectations = [
        { key: `${p}guard`, modRevision: guard.modRevision },
        { key: `${p}a`, modRevision: 0 },
      ] as const;
      expect(await s.putIfUnchanged(expectations, puts)).toBe(true);
      const [a, g] = [(await s.get(`${p}a`))!, (await s.get(`${p}guard`))!];
      expect([a.value, g.value]).toEqual(['A', 'g2']);
      expect(a.modRevision).toBe(g.modRevision);
      expect(a.modRevision).toBeGreaterThan(guard.modRevision);
      // The same expectations no longer hold.
      expect(await s.putIfUnchanged(expectations, [{ key: `${p}b`, value: 'B' }])).toBe(false);
      expect(await s.get(`${p}b`)).toBeUndefined();
    });

    it('deletes keys in the same transaction, only while the expected keys are unchanged', async () => {
      const s = open();
      const watched = new Recorder(p);
      const start = (await s.list(p)).revision + 1;
      const watch = s.watch(p, start, watched);
      await s.put(`${p}held/a`, 'A');
      await s.put(`${p}held/b`, 'B');
      const a = (await s.get(`${p}held/a`))!;
      // `alive` absent (modRevision 0) is the condition, as for reclaiming a dead node.
      const whileAbsent = [{ key: `${p}alive`, modRevision: 0 }, { key: `${p}held/a`, modRevision: a.modRevision }] as const;
      await s.put(`${p}alive`, 'yes');
      expect(await s.putIfUnchanged(whileAbsent, [], [`${p}held/a`, `${p}held/b`])).toBe(false);
      expect((await s.list(`${p}held/`)).kvs.map((kv) => kv.value)).toEqual(['A', 'B']);

      expect(await s.delete(`${p}alive`)).toBe(true);
      const marker = { key: `${p}marker`, value: 'reclaimed' };
      expect(await s.putIfUnchanged(whileAbsent, [marker], [`${p}held/a`, `${p}held/b`, `${p}never-was`])).toBe(true);
      expect((await s.list(`${p}held/`)).kvs).toEqual([]);
      expect((await s.get(`${p}marker`))?.value).toBe('reclaimed');
      // The same condition again: held/a's revision is gone, nothing more happens.
      expect(await s.putIfUnchanged(whileAbsent, [{ key: `${p}again`, value: 'x' }], [`${p}marker`])).toBe(false);
      expect(await s.get(`${p}marker`)).toBeDefined();

      // Watchers see the put and the deletes of existing keys at one revision, and nothing for the absent key.
      await watched.until(() => watched.summary.includes('put marker=reclaimed'), 'the transaction');
      const revisionOf = (e: WatchEvent): number => (e.type === 'put' ? e.kv.modRevision : e.modRevision);
      const txnRevision = revisionOf(watched.events[watched.summary.indexOf('put marker=reclaimed')]!);
      expect(watched.summary.filter((_, i) => revisionOf(watched.events[i]!) === txnRevision).sort()).toEqual(
        ['delete held/a', 'delete held/b', 'put marker=reclaimed'],
      );
      await watch.close();
    });

    it('lets exactly one of 50 concurrent transactions on one guard win, across two clients', async () => {
      const a = open();
      const b = open();
      const guard = `${p}guard`;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (i % 2 === 0 ? a : b).putIfUnchanged([{ key: guard, modRevision: 0 }], [
            { key: guard, value: `v${i}` },
            { key: `${p}by/${i}`, value: 'x' },
          ]),
        ),
      );
      expect(results.filter((won) => won)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await b.get(guard))?.value).toBe(`v${winner}`);
      expect((await a.list(`${p}by/`)).kvs.map((kv) => kv.key)).toEqual([`${p}by/${winner}`]);
    });

    it('deletes, unconditionally or only if unchanged', async () => {
      const s = open();
      await s.put(`${p}plain`, 'x');
      expect(await s.delete(`${p}plain`)).toBe(true);
      expect(await s.get(`${p}plain`)).toBeUndefined();
      expect(await s.delete(`${p}plain`)).toBe(false);

      await s.put(`${p}checked`, 'v1');
      const v1 = (await s.get(`${p}checked`))!;
      await s.put(`${p}checked`, 'v2');
      expect(await s.delete(`${p}checked`, v1.modRevision)).toBe(false);
      expect((await s.get(`${p}checked`))?.value).toBe('v2');
      const v2 = (await s.get(`${p}checked`))!;
      expect(await s.delete(`${p}checked`, v2.modRevision)).toBe(true);
      expect(await s.get(`${p}checked`)).toBeUndefined();
      expect(await s.delete(`${p}checked`, 0)).toBe(false);
    });

    it('watches from a past revision: the history, then live events, in order, deletes too', async () => {
      const s = open();
      await s.put(`${p}w/a`, '1');
      const first = (await s.get(`${p}w/a`))!.modRevision;
      await s.put(`${p}outside`, 'x');
      await s.put(`${p}w/b`, '2');
      await s.delete(`${p}w/a`);

      const rec = new Recorder(p);
      const watch = s.watch(`${p}w/`, first, rec);
      await rec.until(() => rec.events.length >= 3, 'the history');
      expect(rec.summary).toEqual(['put w/a=1', 'put w/b=2', 'delete w/a']);

      await s.put(`${p}w/c`, '3');
      await s.put(`${p}outside`, 'y');
      await s.delete(`${p}w/b`);
      await s.put(`${p}w/c`, '4');
      await rec.until(() => rec.events.length >= 6, 'the live events');
      await sleep(200); // nothing else may follow
      expect(rec.summary).toEqual(['put w/a=1', 'put w/b=2', 'delete w/a', 'put w/c=3', 'delete w/b', 'put w/c=4']);

      const revisions = rec.events.map(modRevisionOf);
      expect(revisions[0]).toBe(first);
      for (let i = 1; i < revisions.length; i++) expect(revisions[i]).toBeGreaterThan(revisions[i - 1]!);
      for (const batch of rec.batches) {
        expect(batch.revision).toBeGreaterThanOrEqual(Math.max(...batch.events.map(modRevisionOf)));
      }
      expect(rec.resets).toEqual([]);
      await watch.close();
    });

    it('watches from a list revision + 1: only later changes, made by another client too', async () => {
      const writer = open();
      const reader = open();
      await writer.put(`${p}k/old`, 'old');
      const listed = await reader.list(`${p}k/`);
      expect(listed.kvs.map((kv) => kv.value)).toEqual(['old']);

      const rec = new Recorder(p);
      const watch = reader.watch(`${p}k/`, listed.revision + 1, rec);
      await writer.create(`${p}k/new`, 'new');
      await writer.delete(`${p}k/old`);
      await rec.until(() => rec.events.length >= 2, "the other client's writes");
      expect(rec.summary).toEqual(['put k/new=new', 'delete k/old']);
      expect((await reader.get(`${p}k/new`))?.value).toBe('new');
      await watch.close();
    });

    it('delivers nothing once a watch is closed', async () => {
      const s = open();
      const rec = new Recorder(p);
      const { revision } = await s.list(p);
      const watch = s.watch(p, revision + 1, rec);
      await s.put(`${p}one`, '1');
      await rec.until(() => rec.events.length === 1, 'the first event');
      await watch.close();
      await s.put(`${p}two`, '2');
      await sleep(300);
      expect(rec.summary).toEqual(['put one=1']);
      await watch.close(); // twice is fine
    });

    it('delivers events after the mutating call, never inside it', async () => {
      const s = open();
      const { revision } = await s.list(p);
      const rec = new Recorder(p);
      let inside = false;
      let deliveriesInside = 0;
      const watch = s.watch(p, revision + 1, {
        onEvents: (events, rev) => {
          if (inside) deliveriesInside++;
          rec.onEvents(events, rev);
        },
        onReset: (reason) => rec.onReset(reason),
      });
      await sleep(50);
      inside = true;
      const put = s.put(`${p}k`, 'v');
      inside = false;
      await put;
      await rec.until(() => rec.batches.length > 0, 'the delivery of the put');
      await sleep(100);
      expect(rec.batches.length).toBe(1);
      expect(rec.summary).toEqual(['put k=v']);
      expect(deliveriesInside).toBe(0);
      await watch.close();
    });

    it('keeps a kept-alive lease and its keys past the TTL; revoke removes them at once', async () => {
      const s = open();
      const lease = await s.grantLease(1);
      expect(typeof lease.id).toBe('string');
      await s.put(`${p}leased/a`, 'a', lease);
      expect(await s.create(`${p}leased/b`, 'b', lease)).toBeGreaterThan(0);
      let lost = false;
      lease.onLost(() => (lost = true));

      await sleep(2500);
      expect((await s.list(`${p}leased/`)).kvs.map((kv) => kv.value)).toEqual(['a', 'b']);

      const { revision } = await s.list(p);
      const rec = new Recorder(p);
      const watch = s.watch(p, revision + 1, rec);
      await lease.revoke();
      expect((await s.list(`${p}leased/`)).kvs).toEqual([]);
      await rec.until(() => rec.events.length >= 2, 'the deletes of the revoked keys');
      expect([...rec.summary].sort()).toEqual(['delete leased/a', 'delete leased/b']);
      expect(lost).toBe(false); // revoked on purpose, not lost
      await expect(s.put(`${p}leased/c`, 'c', lease)).rejects.toThrow(StoreUnavailableError);
      await watch.close();
    });

    it('expires a lease whose holder stopped keeping it alive: its keys vanish for everyone', async () => {
      const holder = open();
      const peer = open();
      const lease = await holder.grantLease(1);
      await holder.put(`${p}node`, 'alive', lease);
      await holder.put(`${p}kept`, 'no lease');
      const { revision } = await peer.list(p);
      const rec = new Recorder(p);
      const watch = peer.watch(p, revision + 1, rec);

      const start = Date.now();
      await holder.close(); // stops the keepalive without revoking, like a crash
      await rec.until(() => rec.summary.includes('delete node'), 'the expiry', 8000);
      expect(Date.now() - start).toBeGreaterThanOrEqual(500);
      expect(await peer.get(`${p}node`)).toBeUndefined();
      expect((await peer.get(`${p}kept`))?.value).toBe('no lease');
      await watch.close();
    });

    it('refuses a lease TTL below one second', async () => {
      const s = open();
      await expect(s.grantLease(0)).rejects.toThrow(BadRequestError);
      await expect(s.grantLease(1.5)).rejects.toThrow(BadRequestError);
    });

    it('rejects calls after close with StoreUnavailableError naming the store', async () => {
      const s = open();
      await s.put(`${p}k`, 'v');
      await s.close();
      await s.close();
      await expect(s.get(`${p}k`)).rejects.toThrow(StoreUnavailableError);
      await expect(s.put(`${p}k`, 'v')).rejects.toThrow(s.description);
      await expect(s.grantLease(5)).rejects.toThrow(StoreUnavailableError);
    });
  });
}

// The three implementations

storeContract('MemoryStore', () => {
  const first = new MemoryStore();
  let opened = 0;
  return Promise.resolve({
    open: () => (opened++ === 0 ? first : first.connect()),
    dispose: () => first.close(),
  });
});

storeContract('FileStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-file-store-'));
  return {
    open: () => new FileStore(join(dir, 'state.json')),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

/** An etcd started once for the file and stopped after it; each test has its own prefix. */
function sharedEtcd(options?: EtcdOptions): Promise<EtcdInstance> {
  const ready = startEtcd(options);
  ready.catch(() => undefined); // reported by the tests that need it
  afterAll(async () => {
    await (await ready.catch(() => undefined))?.stop();
  });
  return ready;
}

const etcdReady = sharedEtcd();

for (const [name, ready] of [
  ['EtcdStore', etcdReady],
  ['EtcdStore over TLS with a client certificate', sharedEtcd({ tls: true })],
  ['EtcdStore logged in as a user whose role allows only /sluice/', sharedEtcd({ auth: true })],
] as const) {
  storeContract(name, async () => {
    const instance = await ready;
    return {
      open: () => new EtcdStore({ endpoints: [instance.endpoint], ...instance.secured }),
      dispose: () => Promise.resolve(),
    };
  });
}

// What only one implementation can show

describe('EtcdStore against a real etcd', () => {
  it('rejects at once, naming the endpoint, when nothing listens there', async () => {
    const port = await freePort();
    const store = new EtcdStore({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 1000 });
    try {
      const err: unknown = await store.get('/x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(new RegExp(`^etcd at 127\\.0\\.0\\.1:${port} did not answer within 1s: is etcd running\\?`));
      // At once: the refused connection is the reason given, not a deadline waited out.
      expect((err as Error).message).toMatch(/UNAVAILABLE: .*ECONNREFUSED/);
      await expect(store.grantLease(5)).rejects.toThrow(StoreUnavailableError);
      const rec = new Recorder();
      store.watch('/', 0, rec);
      await rec.until(() => rec.resets.length === 1, 'the reset of a watch on a dead etcd', 3000);
      expect(rec.resets[0]).toMatch(`127.0.0.1:${port}`);
    } finally {
      await store.close();
    }
  });

  it('moves on to another member when one endpoint is down', async () => {
    const instance = await etcdReady;
    const dead = `127.0.0.1:${await freePort()}`;
    const store = new EtcdStore({ endpoints: [dead, instance.endpoint], timeoutMs: 1000 });
    try {
      expect(store.description).toBe(`etcd at ${dead},${instance.endpoint}`);
      for (let i = 0; i < 20; i++) {
        expect(await store.create(`/failover/${randomBytes(4).toString('hex')}`, 'x')).toBeGreaterThan(0);
      }
    } finally {
      await store.close();
    }
  });

  it('reports a lease lost when etcd no longer has it', async () => {
    const instance = await etcdReady;
    const store = new EtcdStore({ endpoints: [instance.endpoint] });
    const raw = new Etcd3({ hosts: `http://${instance.endpoint}` });
    try {
      const lease = await store.grantLease(2);
      const key = `/lost/${randomBytes(4).toString('hex')}`;
      await store.put(key, 'v', lease);
      let lost = false;
      lease.onLost(() => (lost = true));
      await raw.leaseClient.leaseRevoke({ ID: lease.id }); // as if it had expired
      const deadline = Date.now() + 5000;
      while (!lost && Date.now() < deadline) await sleep(20);
      expect(lost).toBe(true);
      expect(await store.get(key)).toBeUndefined();
      await expect(store.put(key, 'v', lease)).rejects.toThrow(/lease has expired or was revoked: grant a new lease/);
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('resets a watch whose start revision was compacted', async () => {
    const instance = await etcdReady;
    const store = new EtcdStore({ endpoints: [instance.endpoint] });
    const raw = new Etcd3({ hosts: `http://${instance.endpoint}` });
    try {
      const p = `/compact/${randomBytes(4).toString('hex')}/`;
      await store.put(`${p}a`, '1');
      const old = (await store.get(`${p}a`))!.modRevision;
      await store.put(`${p}a`, '2');
      const { revision } = await store.list(p);
      await raw.kv.compact({ revision: String(revision), physical: true });

      const rec = new Recorder(p);
      const watch = store.watch(p, old, rec);
      await rec.until(() => rec.resets.length === 1, 'the reset');
      expect(rec.events).toEqual([]);
      expect(rec.resets[0]).toMatch(/compacted/);
      await watch.close();
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('survives etcd going down and coming back: calls fail fast, watches reset, then all works again', async () => {
    // An etcd of its own: this test kills it.
    const own = await startEtcd();
    const store = new EtcdStore({ endpoints: [own.endpoint], timeoutMs: 1000 });
    try {
      await store.put('/down/k', 'v1');
      const { revision } = await store.list('/down/');
      const rec = new Recorder();
      store.watch('/down/', revision + 1, rec);
      await sleep(200);

      await own.kill();
      await rec.until(() => rec.resets.length === 1, 'the reset when etcd dies');
      // Fast: the refused connection is the reason given, not a deadline waited out.
      await expect(store.get('/down/k')).rejects.toThrow(new RegExp(`^etcd at ${own.endpoint} did not answer .*UNAVAILABLE: .*ECONNREFUSED`));

      await own.restart();
      let value: string | undefined;
      const deadline = Date.now() + 5000;
      while (value === undefined && Date.now() < deadline) {
        value = await store.get('/down/k').then((kv) => kv?.value, () => undefined);
        if (value === undefined) await sleep(100);
      }
      expect(value).toBe('v1');
      expect(await store.create('/down/new', 'x')).toBeGreaterThan(0);
    } finally {
      await store.close();
      await own.stop();
    }
  });
});

describe('FileStore specifics', () => {
  let dir = '';
  const stores: Store[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-file-store-'));
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  function fileStore(path = join(dir, 'state.json'), options = {}): FileStore {
    const store = new FileStore(path, options);
    stores.push(store);
    return store;
  }

  it('writes a readable JSON file, and creates its directory', async () => {
    const path = join(dir, 'sub', 'dir', 'state.json');
    const s = fileStore(path);
    await s.put('/k', 'v');
    const file = JSON.parse(await readFile(path, 'utf8')) as { format: string; kvs: { key: string; value: string }[] };
    expect(file.format).toBe('sluice-state/1');
    expect(file.kvs).toEqual([{ key: '/k', value: 'v', modRevision: 1 }]);
  });

  it('refuses a corrupt file with a message that says what to do, and leaves it alone', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, '{"format": "sluice-state/1", "revis');
    const s = fileStore(path);
    await expect(s.get('/k')).rejects.toThrow(/is not a valid state file .*restore it from a backup/);
    await expect(s.put('/k', 'v')).rejects.toThrow(StoreUnavailableError);
    expect(await readFile(path, 'utf8')).toBe('{"format": "sluice-state/1", "revis');
  });

  it('breaks a lock left by a dead process', async () => {
    const path = join(dir, 'state.json');
    // A pid that is certainly not running: beyond the kernel's pid_max.
    await writeFile(`${path}.lock`, `4194305 ${await readlinkPidNs()}\n`);
    const s = fileStore(path);
    await s.put('/k', 'v');
    expect((await s.get('/k'))?.value).toBe('v');
  });

  it('waits for a live lock holder, then gives up with a message naming the lock', async () => {
    const path = join(dir, 'state.json');
    await writeFile(`${path}.lock`, `${process.pid} ${await readlinkPidNs()}\n`);
    const s = fileStore(path, { lockTimeoutMs: 300 });
    const start = Date.now();
    await expect(s.put('/k', 'v')).rejects.toThrow(`stayed locked by pid ${process.pid}`);
    expect(Date.now() - start).toBeGreaterThanOrEqual(300);
    await expect(s.put('/k', 'v')).rejects.toThrow(`remove ${path}.lock`);
  });

  it('reports a lease lost when another process removed it from the file', async () => {
    const path = join(dir, 'state.json');
    const holder = fileStore(path);
    const lease = await holder.grantLease(30);
    await holder.put('/node', 'alive', lease);
    let lost = false;
    lease.onLost(() => (lost = true));
    // Another process expired it: same file without the lease and its key.
    const file = JSON.parse(await readFile(path, 'utf8')) as { leases: unknown[]; kvs: unknown[]; revision: number };
    await writeFile(`${path}.other`, JSON.stringify({ ...file, leases: [], kvs: [], revision: file.revision + 1 }));
    await rename(`${path}.other`, path);
    expect(await holder.get('/node')).toBeUndefined();
    await sleep(10);
    expect(lost).toBe(true);
  });

  it("resets a watch of another process's writes that fell out of the kept history", async () => {
    const path = join(dir, 'state.json');
    const writer = fileStore(path, { historyLimit: 5 });
    const reader = fileStore(path, { historyLimit: 5, pollIntervalMs: 60_000 });
    await writer.put('/k', '0');
    const { revision } = await reader.list('/');
    const rec = new Recorder();
    const watch = reader.watch('/', revision + 1, rec);
    await sleep(50);
    for (let i = 1; i <= 10; i++) await writer.put('/k', String(i));
    await reader.get('/k'); // reads load the file, as a poll would
    await rec.until(() => rec.resets.length === 1, 'the reset');
    expect(rec.resets[0]).toMatch(/no longer in the history/);
    await watch.close();
  });
});

describe('openStore', () => {
  it('opens etcd and file URLs, and names the default', () => {
    const etcdStore = openStore('etcd://127.0.0.1:2379,[::1]:2380,etcd-1.example:2379');
    expect(etcdStore.description).toBe('etcd at 127.0.0.1:2379,[::1]:2380,etcd-1.example:2379');
    expect(openStore('file:/tmp/x/state.json').description).toBe('state file /tmp/x/state.json');
    expect(openStore('file:///tmp/y.json').description).toBe('state file /tmp/y.json');
    expect(DEFAULT_STORE_URL).toBe('file:/var/lib/sluice/state.json');
    expect(openStore(DEFAULT_STORE_URL).description).toBe('state file /var/lib/sluice/state.json');
    return etcdStore.close();
  });

  it.each(['http://127.0.0.1:2379', 'etcd://', 'etcd://host', 'etcd://host:0', 'etcd://a:1,,b:2', 'file:', 'file://host/x', ''])(
    'refuses %j with the accepted forms',
    (url) => {
      expect(() => openStore(url)).toThrow(BadRequestError);
      expect(() => openStore(url)).toThrow(/etcd:\/\/HOST:PORT|file:/);
    },
  );
});

function readlinkPidNs(): Promise<string> {
  return readlink('/proc/self/ns/pid').catch(() => 'unknown');
}
