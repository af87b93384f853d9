/**
 * An etcd that answers "no" is not an etcd that is down: a request over its
 * size limit must surface as StoreRefusedError naming the limit, never as
 * "did not answer … is etcd running?", and must not stop the next request.
 */
import { StoreRefusedError } from '../../src/errors';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { startEtcd, type EtcdInstance } from '../helpers/etcd';

jest.setTimeout(30_000);

describe('EtcdStore: refused requests', () => {
  let etcd: EtcdInstance;
  let store: EtcdStore;

  beforeAll(async () => {
    etcd = await startEtcd();
    store = new EtcdStore({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    await store.close();
    await etcd.stop();
  });

  // 2 MB is over etcd's --max-request-bytes (1.5 MiB); 3 MB is over its gRPC message limit as well.
  it.each([['2 MB', 2_000_000], ['3 MB', 3_000_000]])('reports a %s write as refused for its size, and keeps serving', async (_, size) => {
    const write = store.put('/sluice/v1/policies/huge', 'x'.repeat(size));
    await expect(write).rejects.toBeInstanceOf(StoreRefusedError);
    await expect(write).rejects.toThrow(/refused to write \/sluice\/v1\/policies\/huge \(the request is larger than etcd accepts: see its --max-request-bytes\)/);
    await store.put('/sluice/v1/policies/small', 'ok');
    expect((await store.get('/sluice/v1/policies/small'))?.value).toBe('ok');
  });
});
