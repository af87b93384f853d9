/**
 * The store is untrusted: garbage under every key kind of a live two-host
 * cluster (real agents, IPAM and driver over the memory store and the
 * recording dataplane) must leave every agent up, applying, and enforcing the
 * valid policies. Garbage is random but seeded, so a failure reproduces.
 */
import { status } from '../../../src/cli/commands';
import { parsePolicies } from '../../../src/policy-document/policy';
import { policyChainName, selectorSetName } from '../../../src/firewall/names';
import { parseSelector } from '../../../src/policy-document/selector';
import { ROOT } from '../../../src/store/keys';
import { createDockerNetwork, eventually, useCluster, type TestHost } from '../../helpers/host';
import { random } from '../../helpers/random';

const NET = 'a'.repeat(64);
const SUBNET = '10.96.0.0/16';
const POLICY = parsePolicies("kind: NetworkPolicy\nname: web-from-client\nselector: role == 'web'\ningress:\n  - action: allow\n    from: role == 'client'\n")[0]!;
const CLIENTS = selectorSetName(parseSelector("role == 'client'").toString());

/** Valid-looking records of every kind, one field of which the fuzzer replaces. */
const TEMPLATES: Record<string, Record<string, unknown>> = {
  networks: { key: '10.200.0.0-16', subnet: '10.200.0.0/16', blockSize: 26, gateway: '10.200.0.1', name: 'x', managed: true },
  nodes: { name: 'h9', ip: '192.0.2.9', backend: 'vxlan', vtepMac: '0e:00:00:00:00:01', version: '0.1.0', lastSeen: '2026-01-01T00:00:00Z' },
  blocks: { network: '10.96.0.0-16', block: '10.96.5.0/26', node: 'h9' },
  addresses: { network: '10.96.0.0-16', address: '10.96.5.7', node: 'h9', kind: 'endpoint' },
  endpoints: { id: 'f'.repeat(64), network: '10.96.0.0-16', node: 'h1', address: '10.96.5.9', hostIfname: 'slvfffffffffff', labels: { role: 'client' }, ports: [] },
};

/** Keys of every kind, well-formed or not, none of them a key the cluster already uses. */
const KEYS: Record<string, string[]> = {
  networks: ['networks/10.200.0.0-16', 'networks/not-a-net', 'networks/a/b'],
  nodes: ['nodes/h9', 'nodes/bad name', 'nodes/'],
  alive: ['alive/h9', 'alive/..', 'alive/a/b'],
  blocks: ['blocks/10.96.0.0-16/10.96.5.0-26', 'blocks/10.96.0.0-16/0.0.0.0-0', 'blocks/x'],
  addresses: ['addresses/10.96.0.0-16/10.96.5.0-26/10.96.5.7', 'addresses/10.96.0.0-16/10.96.5.0-26/999.1.1.1'],
  endpoints: [`endpoints/h1/${'f'.repeat(64)}`, `endpoints/h2/${'d'.repeat(64)}`, 'endpoints/h1'],
  dockernets: [`dockernets/h1/${'b'.repeat(64)}`, 'dockernets/h2/x'],
  policies: ['policies/evil', 'policies/web-from-client-2'],
  future: ['future/thing'],
};

const SCALARS: unknown[] = ['', 'not json{', null, 0, -1, 1.5, 1e300, true, [], {}, '999.1.1.1', '10.96.0.0/33', 'x'.repeat(100_000), '__proto__'];

function garbage(rand: () => number, kind: string): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const choice = Math.floor(rand() * 7);
  const template = TEMPLATES[kind];
  switch (choice) {
    case 0:
      return pick(['not json{', '', '{', 'null', '[]', '42', '"text"', '{"__proto__": {"polluted": true}}']);
    case 1:
      return Array.from({ length: 1 + Math.floor(rand() * 64) }, () => String.fromCharCode(Math.floor(rand() * 0x2fff))).join('');
    case 2:
      return `${'['.repeat(5000)}${']'.repeat(5000)}`;
    case 3:
    case 4: {
      // Valid JSON of nearly the right shape: one field wrong, or missing.
      if (!template) return JSON.stringify(pick(SCALARS));
      const record: Record<string, unknown> = { ...template };
      const field = pick(Object.keys(record));
      if (choice === 3) delete record[field];
      else record[field] = pick(SCALARS);
      return JSON.stringify(record);
    }
    case 5:
      return kind === 'policies'
        ? pick([
            `kind: NetworkPolicy\nname: evil\nselector: ${'('.repeat(1001)}a == 'b'${')'.repeat(1001)}\ningress: []\n`,
            'kind: NetworkPolicy\nname: evil\nselector: all()\ningress: &r [*r]\n',
            `kind: NetworkPolicy\nname: evil\nselector: "${Array.from({ length: 40_000 }, (_, i) => `t${i} == 'x'`).join(' || ')}"\ningress: []\n`,
            'kind: NetworkPolicy\nname: other\nselector: all()\ningress: []\n',
          ])
        : JSON.stringify({ ...template, extra: 'x'.repeat(1_000_000) });
    default:
      return JSON.stringify(pick(SCALARS));
  }
}

describe('Agent: garbage in the store', () => {
  const cluster = useCluster({ onLink: ['192.0.2.1', '192.0.2.2'] });
  const start = (name: string, ip: string): Promise<TestHost> => cluster.start(name, ip);

  /** `docker run --net appnet --label role=ROLE` on `host`; returns the container's address. */
  async function run(host: TestHost, poolId: string, endpointId: string, role: string): Promise<string> {
    const { address } = await host.ipam.requestAddress({ poolId });
    host.docker.run(NET, endpointId, { containerId: `c-${endpointId}`, containerName: role, labels: { role } });
    await host.driver.createEndpoint({ networkId: NET, endpointId, address, portMappings: [], driverOptions: {} });
    await host.driver.join({ networkId: NET, endpointId, sandboxKey: '/var/run/docker/netns/x', portMappings: [] });
    return address.split('/')[0]!;
  }

  const chains = (host: TestHost) => host.dataplane.firewall.filter.map((c) => c.name);
  const members = (host: TestHost, set: string) => host.dataplane.firewall.ipsets.find((s) => s.name === set)?.members ?? [];

  it('keeps every agent up, applying and enforcing the valid policy whatever is written under any key', async () => {
    const h1 = await start('h1', '192.0.2.1');
    const h2 = await start('h2', '192.0.2.2');
    const poolId = await createDockerNetwork(h1, NET, SUBNET);
    await createDockerNetwork(h2, NET, SUBNET);
    await h1.registry.putPolicy(POLICY);
    const web = await run(h1, poolId, '1'.repeat(64), 'web');
    const client = await run(h2, poolId, '2'.repeat(64), 'client');
    await eventually(() => expect(members(h1, CLIENTS)).toEqual([client]));
    expect(chains(h1)).toContain(policyChainName('ingress', POLICY.name));

    // The exact input of issue 7, then random garbage under every kind of key, a few rounds over.
    await cluster.store().connect().put(`${ROOT}networks/10.201.0.0-16`, 'not json{');
    const rand = random(7);
    const writer = cluster.store().connect();
    for (let round = 0; round < 12; round++) {
      for (const [kind, keys] of Object.entries(KEYS)) {
        for (const key of keys) await writer.put(`${ROOT}${key}`, garbage(rand, kind));
      }
    }
    for (const host of [h1, h2]) await host.agent.converge();

    // Still enforcing: the policy's chain, the web endpoint under it, the client in its source set.
    for (const host of [h1, h2]) {
      expect(chains(host)).toContain(policyChainName('ingress', POLICY.name));
      expect(members(host, CLIENTS)).toContain(client);
    }
    expect(members(h1, 'sluice-ingress-governed')).toEqual([web]);
    expect(h1.agent.view.invalid.get(`${ROOT}networks/10.201.0.0-16`)).toBe('value is not JSON: "not json{"');

    // Still applying: a new client on h2 reaches h1's set through the watch, and the plugin still serves.
    const second = await run(h2, poolId, '3'.repeat(64), 'client');
    await eventually(() => expect(members(h1, CLIENTS)).toEqual([client, second].sort()));

    // A restarted agent syncs past the garbage too (issue 7: "sync … failed" in a loop).
    await h1.agent.stop();
    const again = await cluster.start('h1', '192.0.2.1', { dataplane: h1.dataplane, docker: h1.docker });
    expect(members(again, CLIENTS)).toEqual([client, second].sort());
    expect(chains(again)).toContain(policyChainName('ingress', POLICY.name));

    // And the CLI names what the agents ignore.
    expect(await status(again.registry)).toMatch(/INVALID RECORDS[^]*\/sluice\/v1\/networks\/10\.201\.0\.0-16\s+value is not JSON/);
  });
});
