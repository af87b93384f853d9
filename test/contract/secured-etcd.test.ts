/**
 * A secured etcd (TLS with required client certificates, auth on, Sluice's user
 * limited to /sluice/): each way of getting the access wrong is refused with its
 * own error class and a message naming what to fix, not as "etcd unavailable".
 * The contract itself over TLS and over auth runs in store.contract.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { networkCreate, policyApply, policyGet, policyList, policyRemove } from '../../src/cli/commands';
import { BadRequestError, StoreAuthError, StoreTlsError } from '../../src/errors';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import type { EtcdStoreOptions } from '../../src/store/etcd-store/options';
import { keys } from '../../src/store/keys';
import { openStore } from '../../src/store/open-store';
import { Registry } from '../../src/store/registry';
import type { Store } from '../../src/store/store';
import { freePort, SLUICE_USER, startEtcd, type EtcdInstance, type Pki } from '../helpers/etcd';

jest.setTimeout(30_000);

let etcd: EtcdInstance;
/** Auth on, but no TLS: without TLS a client certificate cannot stand in for a login. */
let plain: EtcdInstance;
let pki: Pki;
let rogue: Pki;
const opened: Store[] = [];

beforeAll(async () => {
  [etcd, plain] = await Promise.all([startEtcd({ tls: true, auth: true }), startEtcd({ auth: true })]);
  pki = etcd.pki!;
  rogue = etcd.roguePki!;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

afterAll(async () => {
  await Promise.all([etcd?.stop(), plain?.stop()]);
});

function open(options: Partial<EtcdStoreOptions>): Store {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], ...etcd.secured, ...options });
  opened.push(store);
  return store;
}

/** The error of one read: what the agent's or the CLI's first call would see. */
async function firstError(store: Store): Promise<unknown> {
  return store.get('/sluice/v1/nodes/h1').then(
    () => new Error('the read succeeded'),
    (err: unknown) => err,
  );
}

/** The reason a watch gives when it ends. */
function watchReset(store: Store, prefix: string): Promise<string> {
  return new Promise((resolve) => {
    store.watch(prefix, 0, { onEvents: () => undefined, onReset: resolve });
  });
}

function key(): string {
  return `/sluice/secured/${randomBytes(4).toString('hex')}`;
}

async function pem(file: string): Promise<Buffer> {
  return readFile(file);
}

describe('EtcdStore against an etcd with TLS, client certificates and auth', () => {
  it('works with the right CA, client certificate and login: reads, writes, leases, watches', async () => {
    const store = open({});
    const k = key();
    expect(await store.create(k, 'v')).toBeGreaterThan(0);
    expect((await store.get(k))?.value).toBe('v');
    const lease = await store.grantLease(5);
    await store.put(`${k}/leased`, 'x', lease);
    await lease.revoke();
    expect(await store.get(`${k}/leased`)).toBeUndefined();
  });

  it('names an unknown CA when etcd\'s certificate is not signed by --etcd-ca', async () => {
    const tls = { ...etcd.secured.tls, ca: await pem(rogue.ca) };
    const store = open({ tls });
    const err = await firstError(store);
    expect(err).toBeInstanceOf(StoreTlsError);
    expect((err as Error).message).toBe(
      `etcd at ${etcd.endpoint}: unknown CA: etcd's certificate is not signed by the CA of --etcd-ca: pass the CA that signed it with --etcd-ca`,
    );
    await expect(store.grantLease(5)).rejects.toThrow(StoreTlsError);
    expect(await watchReset(store, '/sluice/')).toMatch(/unknown CA/);
  });

  it('names a refused certificate when the client certificate comes from another CA', async () => {
    const store = open({ tls: { ca: await pem(pki.ca), cert: await pem(rogue.cert), key: await pem(rogue.key) } });
    const err = await firstError(store);
    expect(err).toBeInstanceOf(StoreTlsError);
    expect((err as Error).message).toMatch(/: certificate refused: etcd does not accept the client certificate of --etcd-cert/);
  });

  it('says a client certificate is required when none is given', async () => {
    const store = open({ tls: { ca: await pem(pki.ca) } });
    const err = await firstError(store);
    expect(err).toBeInstanceOf(StoreTlsError);
    expect((err as Error).message).toMatch(/certificate refused: etcd requires a client certificate: pass --etcd-cert and --etcd-key/);
  });

  it('says etcd probably wants TLS when a plain client meets it', async () => {
    const err = await firstError(open({ tls: undefined }));
    expect(err).toBeInstanceOf(StoreTlsError);
    expect((err as Error).message).toBe(
      `etcd at ${etcd.endpoint} dropped a plain connection: it probably wants TLS: pass --etcd-ca (and --etcd-cert, --etcd-key if it requires a client certificate)`,
    );
  });

  it('says etcd does not speak TLS when TLS meets a plain etcd', async () => {
    const store = new EtcdStore({ endpoints: [plain.endpoint], ...etcd.secured });
    opened.push(store);
    const err = await firstError(store);
    expect(err).toBeInstanceOf(StoreTlsError);
    expect((err as Error).message).toBe(
      `etcd at ${plain.endpoint} does not speak TLS: use etcd:// without --etcd-ca, or the port etcd serves TLS on`,
    );
  });

  it('names a wrong password as such', async () => {
    const err = await firstError(open({ auth: { username: SLUICE_USER.username, password: 'not-the-password' } }));
    expect(err).toBeInstanceOf(StoreAuthError);
    expect((err as Error).message).toBe(
      `etcd at ${etcd.endpoint} refused the login of user sluice: wrong user name or password (SLUICE_ETCD_PASSWORD or --etcd-password-file)`,
    );
  });

  it('asks for a login when auth is on and no user is given', async () => {
    const err = await firstError(open({ endpoints: [plain.endpoint], tls: undefined, auth: undefined }));
    expect(err).toBeInstanceOf(StoreAuthError);
    expect((err as Error).message).toMatch(/requires a login: pass --etcd-user NAME and a password/);
  });

  it('names permission denied outside /sluice/, where the same user may write', async () => {
    const store = open({});
    expect(await store.create(key(), 'allowed')).toBeGreaterThan(0);
    const err = await store.create('/elsewhere/k', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreAuthError);
    expect((err as Error).message).toBe(
      `etcd at ${etcd.endpoint}: permission denied to create /elsewhere/k for user sluice: Sluice needs a role with read-write on the key prefix /sluice/`,
    );
    await expect(store.list('/elsewhere/')).rejects.toThrow(/permission denied to list \/elsewhere\//);
    expect(await watchReset(store, '/elsewhere/')).toMatch(/permission denied to watch \/elsewhere\//);
  });

  it('takes the client certificate\'s CN (sluice) as the user when no login is given, with the same limits', async () => {
    const { tls } = etcd.secured;
    const store = open({ ...(tls && { tls }), auth: undefined });
    expect(await store.create(key(), 'x')).toBeGreaterThan(0);
    await expect(store.create('/elsewhere/cn', 'v')).rejects.toThrow(/permission denied to create \/elsewhere\/cn for a client without --etcd-user/);
  });

  it('fails over to the next endpoint with TLS and a login', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const store = open({ endpoints: [dead, etcd.endpoint], timeoutMs: 1000 });
    for (let i = 0; i < 10; i++) expect(await store.create(key(), 'x')).toBeGreaterThan(0);
  });
});

describe('a role for policy authors, read-write on /sluice/v1/policies/ only', () => {
  it('lets its user apply, list, show and remove policies, and nothing else', async () => {
    const author = { username: 'policy-author', password: 'author-password' };
    await plain.addUser(author, keys.policies);
    const registry = new Registry(open({ endpoints: [plain.endpoint], tls: undefined, auth: author }));
    const dir = await mkdtemp(join(tmpdir(), 'sluice-policy-'));
    try {
      const file = join(dir, 'policy.yaml');
      await writeFile(file, "kind: NetworkPolicy\nname: web-from-client\nselector: role == 'web'\ningress:\n  - action: allow\n    from: role == 'client'\n");
      expect(await policyApply(registry, file)).toBe('policy web-from-client applied');
      expect(await policyList(registry)).toMatch(/^web-from-client\s/m);
      expect(await policyGet(registry, 'web-from-client')).toContain("selector: role == 'web'");
      expect(await policyRemove(registry, 'web-from-client')).toBe('policy web-from-client removed');
      await expect(networkCreate(registry, 'net', '10.99.0.0/16', 26)).rejects.toThrow(
        /permission denied to read \/sluice\/v1\/pool-guard for user policy-author/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('openStore with the etcd settings of the flags', () => {
  it('reads the PEM files, and speaks TLS for https:// as for a CA', async () => {
    const access = { caFile: pki.ca, certFile: pki.cert, keyFile: pki.key, ...{ user: SLUICE_USER.username, password: SLUICE_USER.password } };
    for (const url of [`etcd://${etcd.endpoint}`, `https://${etcd.endpoint}`]) {
      const store = openStore(url, access);
      opened.push(store);
      expect(await store.create(key(), 'x')).toBeGreaterThan(0);
    }
  });

  it('refuses a file it cannot read or that holds no certificate, naming the flag', () => {
    expect(() => openStore(`etcd://${etcd.endpoint}`, { caFile: '/nonexistent/ca.crt' })).toThrow(
      new BadRequestError('--etcd-ca /nonexistent/ca.crt: cannot read it: ENOENT'),
    );
    expect(() => openStore(`etcd://${etcd.endpoint}`, { caFile: pki.key })).toThrow(/^--etcd-ca .*client\.key: not a PEM certificate/);
    expect(() => openStore(`etcd://${etcd.endpoint}`, { caFile: pki.ca, certFile: pki.cert, keyFile: pki.cert })).toThrow(
      /^--etcd-key .*client\.crt: not a PEM private key/,
    );
  });

  it('refuses etcd settings for a state file', () => {
    expect(() => openStore('file:/tmp/x.json', { caFile: pki.ca, user: 'sluice' })).toThrow(
      new BadRequestError('store URL "file:/tmp/x.json" is a state file: the etcd settings (caFile, user) apply to an etcd store only'),
    );
  });
});
