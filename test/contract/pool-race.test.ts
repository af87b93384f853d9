/**
 * Hosts racing to create networks, through the real Ipam, on every store.
 * A host is an Ipam with its own store client: two EtcdStores on one etcd,
 * two FileStores on one file (as two processes), two MemoryStores on one
 * engine. Whatever the timing, overlapping subnets never both exist, the same
 * subnet is one network, and no address is handed out twice; IPv6 pools too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, errorMessage } from '../../src/errors';
import { Ipam } from '../../src/ipam/ipam-service';
import { overlaps, parseCidr } from '../../src/net/ip';
import { EtcdStore } from '../../src/store/etcd-store/adapter';
import { FileStore } from '../../src/store/file-store/adapter';
import { ROOT } from '../../src/store/keys';
import { MemoryStore } from '../../src/store/memory-store';
import { Registry } from '../../src/store/registry';
import type { Store } from '../../src/store/store';
import { startEtcd, type EtcdInstance } from '../helpers/etcd';

jest.setTimeout(300_000);

const ROUNDS = 200;

interface Backing {
  /** A new client on the shared data: one more host. */
  open(): Store;
  dispose(): Promise<void>;
}

interface Host {
  ipam: Ipam;
  store: Store;
}

type Outcome = PromiseSettledResult<{ poolId: string; pool: string; gateway: string; address: string }>;

/** Docker's calls for a network create on one host: the pool, then an address for a container. */
async function createAndAllocate(host: Host, pool?: string) {
  const { poolId, pool: subnet, data } = await host.ipam.requestPool({ pool, options: {}, v6: pool?.includes(':') ?? false });
  const { address } = await host.ipam.requestAddress({ poolId });
  return { poolId, pool: subnet, gateway: data['com.docker.network.gateway']!.split('/')[0]!, address: address.split('/')[0]! };
}

/** The checks every round ends with: losers lost with a ConflictError, no address twice, no overlapping networks stored. */
async function check(outcomes: Outcome[], admin: Registry): Promise<string[]> {
  const problems: string[] = [];
  const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  for (const o of outcomes) {
    if (o.status === 'rejected' && !(o.reason instanceof ConflictError)) problems.push(`failed oddly: ${errorMessage(o.reason)}`);
  }
  // Each pool's gateway once (every host shares it), and every container's address.
  const gateways = new Map(won.map((w) => [w.poolId, w.gateway]));
  const handedOut = [...gateways.values(), ...won.map((w) => w.address)];
  const twice = handedOut.filter((a, i) => handedOut.indexOf(a) !== i);
  if (twice.length > 0) problems.push(`address handed out twice: ${twice.join(', ')} (pools ${won.map((w) => w.pool).join(', ')})`);
  const stored = (await admin.listNetworks()).map((n) => n.subnet);
  for (const [i, a] of stored.entries()) {
    for (const b of stored.slice(i + 1)) {
      if (overlaps(parseCidr(a)!, parseCidr(b)!)) problems.push(`overlapping networks stored: ${a} and ${b}`);
    }
  }
  return problems;
}

/** Races of each kind, run in turn; each returns what a user would see go wrong (nothing, when all is well). */
const races: { name: string; run(a: Host, b: Host, admin: Registry): Promise<string[]> }[] = [
  ...[
    ['10.160.8.0/21', '10.160.8.0/22'],
    ['10.160.0.0/16', '10.160.200.0/24'],
    ['fd00:160::/48', 'fd00:160:0:8::/64'],
  ].map(([first, second]) => ({
    name: `${first} vs ${second}`,
    async run(a: Host, b: Host, admin: Registry) {
      const outcomes = await Promise.allSettled([createAndAllocate(a, first), createAndAllocate(b, second)]);
      const problems = await check(outcomes, admin);
      if (outcomes.every((o) => o.status === 'fulfilled')) problems.push('both overlapping creates succeeded');
      if (outcomes.every((o) => o.status === 'rejected')) problems.push('both creates failed');
      return problems;
    },
  })),
  {
    name: 'the same subnet on both hosts',
    async run(a, b, admin) {
      const outcomes = await Promise.allSettled([createAndAllocate(a, '10.160.8.0/22'), createAndAllocate(b, '10.160.8.0/22')]);
      const problems = await check(outcomes, admin);
      if (outcomes.some((o) => o.status === 'rejected')) problems.push('a create of the same subnet failed');
      const stored = await admin.listNetworks();
      if (stored.length !== 1) problems.push(`${stored.length} networks stored, not one`);
      return problems;
    },
  },
  {
    name: 'two creates without --subnet',
    async run(a, b, admin) {
      const outcomes = await Promise.allSettled([createAndAllocate(a), createAndAllocate(b)]);
      const problems = await check(outcomes, admin);
      if (outcomes.some((o) => o.status === 'rejected')) problems.push('a create without --subnet failed');
      return problems;
    },
  },
  {
    name: 'a network removed while an overlapping one is created',
    async run(a, b, admin) {
      const { poolId } = await a.ipam.requestPool({ pool: '10.161.0.0/16', options: {}, v6: false });
      const [removed, created] = await Promise.allSettled([a.ipam.releasePool(poolId), createAndAllocate(b, '10.161.4.0/24')]);
      const problems = await check([created], admin);
      if (removed.status === 'rejected') problems.push(`the removal failed: ${errorMessage(removed.reason)}`);
      return problems;
    },
  },
];

function hostOn(store: Store, node: string): Host {
  const ipam = new Ipam(new Registry(store), {
    node,
    defaultSupernet: parseCidr('10.192.0.0/12')!,
    defaultSubnetPrefix: 24,
    defaultBlockSize: 26,
  });
  return { ipam, store };
}

/** Forgets everything Sluice stored, for the next round. */
async function clear(store: Store): Promise<void> {
  for (const { key } of (await store.list(ROOT)).kvs) await store.delete(key);
}

function raceContract(name: string, backingFactory: () => Promise<Backing>): void {
  describe(`overlapping network creates raced on two hosts: ${name}`, () => {
    let backing: Backing;
    let stores: Store[];

    beforeAll(async () => {
      backing = await backingFactory();
      stores = [backing.open(), backing.open(), backing.open()];
    });
    afterAll(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await backing.dispose();
    });

    it(`never lets overlapping creates both win, in ${ROUNDS} rounds of ${races.length} races`, async () => {
      const [a, b, admin] = [hostOn(stores[0]!, 'h1'), hostOn(stores[1]!, 'h2'), new Registry(stores[2]!)];
      const failures: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const race = races[round % races.length]!;
        await clear(admin.store);
        const problems = await race.run(a, b, admin);
        failures.push(...problems.map((p) => `round ${round} (${race.name}): ${p}`));
      }
      expect(failures).toEqual([]);
    });
  });
}

raceContract('MemoryStore', () => {
  const first = new MemoryStore();
  let opened = 0;
  return Promise.resolve({
    open: () => (opened++ === 0 ? first : first.connect()),
    dispose: () => first.close(),
  });
});

raceContract('FileStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-pool-race-'));
  return {
    open: () => new FileStore(join(dir, 'state.json')),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

raceContract('EtcdStore', async () => {
  const etcd: EtcdInstance = await startEtcd();
  return {
    open: () => new EtcdStore({ endpoints: [etcd.endpoint] }),
    dispose: () => etcd.stop(),
  };
});
