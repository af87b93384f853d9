/**
 * A list of the whole cluster at any size: 50,000 endpoints (~20 MB, five times grpc's 4 MiB
 * reply limit) list as one snapshot that a watch continues from, and a list whose snapshot
 * etcd compacts away while it reads starts over instead of failing.
 */
import { get } from 'node:http';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { ROOT, keys } from '../../src/store/keys';
import type { WatchEvent } from '../../src/store/store';
import { bigCluster, writeAll } from '../helpers/big-cluster';
import { startEtcd, type EtcdInstance } from '../helpers/etcd';

jest.setTimeout(180_000);

const ENDPOINTS = 50_000;

describe('EtcdStore: listing a large cluster', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;
  let raw: Etcd3;
  const cluster = bigCluster(ENDPOINTS);

  beforeAll(async () => {
    etcd = await startEtcd();
    store = new EtcdStore({ endpoints: [etcd.endpoint] });
    raw = new Etcd3({ hosts: `http://${etcd.endpoint}` });
    await writeAll(etcd.endpoint, cluster);
  });
  afterAll(async () => {
    raw.close();
    await store.close();
    await etcd.stop();
  });

  it('lists 50,000 endpoints (~20 MB) as one snapshot, and a watch from its revision sees the next write', async () => {
    const bytes = cluster.reduce((sum, { key, value }) => sum + key.length + value.length, 0);
    expect(bytes).toBeGreaterThan(4 * 4 * 1024 * 1024);

    const { kvs, revision } = await store.list(ROOT);
    expect(kvs.map((kv) => kv.key)).toEqual(cluster.map((p) => p.key).sort(byBytes));
    expect(kvs.filter((kv) => kv.key.startsWith(keys.allEndpoints))).toHaveLength(ENDPOINTS);
    expect(revision).toBe(Math.max(...kvs.map((kv) => kv.modRevision)));

    const seen: WatchEvent[] = [];
    const watch = store.watch(ROOT, revision + 1, { onEvents: (events) => seen.push(...events), onReset: (reason) => seen.push({ type: 'delete', key: reason, modRevision: -1 }) });
    try {
      await store.put(keys.policy('after-the-list'), 'x');
      await until(() => seen.length > 0);
      expect(seen).toEqual([{ type: 'put', kv: { key: keys.policy('after-the-list'), value: 'x', modRevision: revision + 1 } }]);
    } finally {
      await watch.close();
      await store.delete(keys.policy('after-the-list'));
    }
  });

  it('starts the list over at a new revision when etcd compacts its revision away between pages', async () => {
    const late = keys.policy('written-during-the-list');
    const ranges = await rangeCount(etcd.endpoint);
    const listing = store.list(ROOT);
    // Once the first page is read, a write and a compaction past the list's revision.
    await until(async () => (await rangeCount(etcd.endpoint)) > ranges);
    const { header } = await raw.kv.put({ key: Buffer.from(late), value: Buffer.from('late') });
    await raw.kv.compact({ revision: header.revision, physical: true });

    const { kvs, revision } = await listing;
    // Only a list begun after the compaction can hold the late write.
    expect(kvs.find((kv) => kv.key === late)?.value).toBe('late');
    // One snapshot: nothing newer than the revision it reports, so a watch from there misses nothing.
    expect(revision).toBeGreaterThanOrEqual(Number(header.revision));
    expect(Math.max(...kvs.map((kv) => kv.modRevision))).toBeLessThanOrEqual(revision);
    expect(kvs).toHaveLength(cluster.length + 1);
    await store.delete(late);
  });

  it('lists values too big for a 1,000-key page: 4 values of 1.4 MB each', async () => {
    const prefix = '/big-values/';
    for (let i = 0; i < 4; i++) await store.put(`${prefix}${i}`, String(i).repeat(1_400_000));
    const { kvs } = await store.list(prefix);
    expect(kvs.map((kv) => [kv.key, kv.value.length])).toEqual([0, 1, 2, 3].map((i) => [`${prefix}${i}`, 1_400_000]));
  });
});

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** How many reads etcd has served: its etcd_mvcc_range_total metric. */
function rangeCount(endpoint: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(`http://${endpoint}/metrics`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(Number(/^etcd_mvcc_range_total (\d+)/m.exec(body)?.[1] ?? NaN)));
      res.on('error', reject);
    }).on('error', reject);
  });
}
