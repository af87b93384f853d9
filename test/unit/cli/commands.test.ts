import { ConflictError, NotFoundError, PolicyError } from '../../../src/errors';
import { parsePolicies } from '../../../src/policy-document/policy';
import { networkCreate, networkList, networkRemove, nodeRemove, policyApply, policyExplain, policyGet, policyList, policyRemove, status } from '../../../src/cli/commands';
import { MemoryStore } from '../../../src/store/memory-store';
import { Registry } from '../../../src/store/registry';
import { Ipam, defineNetwork, newNetworkRecord } from '../../../src/ipam/ipam-service';
import { parseCidr } from '../../../src/net/ip';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

describe('sluice CLI commands', () => {
  let store: MemoryStore;
  let registry: Registry;
  beforeEach(() => {
    store = new MemoryStore();
    registry = new Registry(store);
  });
  afterEach(() => store.close());

  async function deadNode(name: string, lastSeen: Date): Promise<void> {
    await registry.putNode({ name, ip: '192.0.2.9', backend: 'auto', version: 'test', lastSeen: lastSeen.toISOString() });
    const ipam = new Ipam(registry, { node: name, defaultSupernet: parseCidr('10.96.0.0/12')!, defaultSubnetPrefix: 16, defaultBlockSize: 26 });
    const { poolId } = await ipam.requestPool({ pool: '10.96.0.0/16', options: {}, v6: false });
    await ipam.requestAddress({ poolId });
  }

  it('releases a dead node\'s blocks and addresses only after the grace period, or with --force', async () => {
    await deadNode('gone', new Date(Date.now() - 3600_000));
    await expect(nodeRemove(registry, 'gone', 86400, false)).rejects.toThrow(/within the grace period of 86400 s/);
    expect(await registry.listBlocks('10.96.0.0-16')).toHaveLength(1);
    expect(await nodeRemove(registry, 'gone', 600, false)).toBe('node gone removed; 1 block(s) released');
    expect(await registry.listBlocks('10.96.0.0-16')).toEqual([]);
    expect((await registry.listAddresses('10.96.0.0-16')).map((a) => a.record.kind)).toEqual(['gateway']);
    expect(await registry.listNodes()).toEqual([]);
  });

  it('refuses to remove a live node or an unknown one', async () => {
    await deadNode('busy', new Date());
    await registry.markAlive('busy', await store.grantLease(30));
    await expect(nodeRemove(registry, 'busy', 0, true)).rejects.toBeInstanceOf(ConflictError);
    await expect(nodeRemove(registry, 'nobody', 0, true)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('defines, lists and removes networks, refusing duplicates and overlaps', async () => {
    expect(await networkCreate(registry, 'shared', '10.120.0.0/16', 26)).toContain('every agent now creates it');
    await expect(networkCreate(registry, 'shared', '10.121.0.0/16', 26)).rejects.toThrow('network shared already exists');
    await expect(networkCreate(registry, 'other', '10.120.5.0/24', 26)).rejects.toThrow(/overlaps sluice network shared/);
    expect(await networkList(registry)).toMatch(/shared\s+10\.120\.0\.0\/16\s+10\.120\.0\.1\s+\/26/);
    expect(await networkRemove(registry, 'shared')).toContain('removed');
    expect(await registry.listNetworks()).toEqual([]);
  });

  it('applies policies from a file, shows and removes them, and applies nothing of an invalid file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-cli-'));
    try {
      const good = path.join(dir, 'good.yaml');
      writeFileSync(good, "kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress:\n  - action: allow\n    from: role == 'client'\n");
      expect(await policyApply(registry, good)).toBe('policy web applied');
      expect(await policyList(registry)).toMatch(/web\s+1000\s+\*\s+role == 'web'\s+1\s+0/);
      expect(await policyGet(registry, 'web')).toContain("from: role == 'client'");
      const bad = path.join(dir, 'bad.yaml');
      writeFileSync(bad, "kind: NetworkPolicy\nname: second\nselector: all()\negress: []\n---\nkind: NetworkPolicy\nname: third\nselector: role in {'a'\negress: []\n");
      await expect(policyApply(registry, bad)).rejects.toThrow(/document 2 \(name: third\)/);
      expect((await registry.listPolicies()).map((p) => p.name)).toEqual(['web']);
      await expect(policyApply(registry, path.join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read .*missing\.yaml: ENOENT/);
      expect(await policyRemove(registry, 'web')).toBe('policy web removed');
      await expect(policyRemove(registry, 'web')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows nodes with liveness, networks and endpoints with labels in status', async () => {
    await deadNode('h9', new Date('2026-01-01T00:00:00Z'));
    await registry.putEndpoint({ id: 'e'.repeat(64), network: '10.96.0.0-16', node: 'h9', address: '10.96.0.2', hostIfname: 'slveeeeeeeeeee', labels: null, ports: [] });
    const text = await status(registry);
    expect(text).toMatch(/h9\s+dead \(last seen 2026-01-01T00:00:00.000Z\)\s+192\.0\.2\.9\s+auto\s+test\s+10\.96\.0\.0\/26\s+1/);
    expect(text).toMatch(/eeeeeeeeeeee\s+10\.96\.0\.0\/16\s+h9\s+10\.96\.0\.2\s+\(unknown\)\s+fail-closed/);
    await registry.putEndpoint({ id: 'f'.repeat(64), network: '10.96.0.0-16', node: 'h9', address: '10.96.0.3', hostIfname: 'slvfffffffffff', labels: { role: 'web' }, ports: [] });
    await registry.putPolicy(parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: []\n")[0]!);
    expect(await status(registry)).toMatch(/ffffffffffff\s+10\.96\.0\.0\/16\s+h9\s+10\.96\.0\.3\s+role=web\s+web$/m);
  });

  it('keeps IPv4-only status without IPv6 columns', async () => {
    await deadNode('h9', new Date('2026-01-01T00:00:00Z'));
    await registry.putEndpoint({ id: 'e'.repeat(64), network: '10.96.0.0-16', node: 'h9', address: '10.96.0.2', hostIfname: 'slveeeeeeeeeee', labels: {}, ports: [] });
    const text = await status(registry);
    expect(text).toMatch(/^NAME\s+LIVENESS\s+ADDRESS\s+BACKEND\s+VERSION\s+BLOCKS\s+ENDPOINTS\s+ENCRYPTION\s+LAST APPLY$/m);
    expect(text).toMatch(/^CONTAINER\s+NETWORK\s+NODE\s+ADDRESS\s+LABELS\s+POLICIES$/m);
  });

  describe('a dual-stack network', () => {
    const V6_POOL = 'fd00:96::/64';
    beforeEach(async () => {
      await defineNetwork(registry, () =>
        newNetworkRecord(parseCidr('10.96.0.0/16')!, 26, { name: 'appnet', managed: true, settings: { internal: false, auxAddresses: {}, ipv6Subnet: V6_POOL } }),
      );
      await registry.putNode({ name: 'h9', ip: '192.0.2.9', ip6: 'fd00:250::19', backend: 'auto', version: 'test', lastSeen: '2026-01-01T00:00:00Z' });
      await registry.putDockerNet('h9', 'd'.repeat(64), '10.96.0.0-16');
      const ipam = new Ipam(registry, { node: 'h9', defaultSupernet: parseCidr('10.96.0.0/12')!, defaultSubnetPrefix: 16, defaultBlockSize: 26 });
      for (const [pool, v6] of [['10.96.0.0/16', false], [V6_POOL, true]] as const) {
        const { poolId } = await ipam.requestPool({ pool, options: {}, v6 });
        await ipam.requestAddress({ poolId });
      }
      const endpoint = { network: '10.96.0.0-16', node: 'h9', labels: {}, ports: [] };
      await registry.putEndpoint({ ...endpoint, id: 'e'.repeat(64), containerName: 'dual', address: '10.96.0.2', addressV6: 'fd00:96::2', hostIfname: 'slveeeeeeeeeee' });
      await registry.putEndpoint({ ...endpoint, id: 'f'.repeat(64), containerName: 'plain', address: '10.96.0.3', hostIfname: 'slvfffffffffff' });
    });

    it('shows IPv6 addresses next to IPv4 ones, and the IPv6 pool and its blocks as the network\'s', async () => {
      const text = await status(registry);
      expect(text).toMatch(/^h9\s+dead .*\s+192\.0\.2\.9\s+fd00:250::19\s+auto\s+test\s+10\.96\.0\.0\/26,fd00:96::\/122\s+2\s/m);
      expect(text).toMatch(/^appnet\s+10\.96\.0\.0\/16\s+\/26\s+10\.96\.0\.1\s+sluice$/m);
      expect(text).toMatch(/^appnet\s+fd00:96::\/64\s+\/122\s+fd00:96::1\s+docker$/m);
      expect(text).toMatch(/^CONTAINER\s+NETWORK\s+NODE\s+ADDRESS\s+IPV6 ADDRESS\s+LABELS\s+POLICIES$/m);
      expect(text).toMatch(/^dual\s+appnet\s+h9\s+10\.96\.0\.2\s+fd00:96::2\s+-\s+default$/m);
      expect(text).toMatch(/^plain\s+appnet\s+h9\s+10\.96\.0\.3\s+-\s+-\s+default$/m);
      expect(await networkList(registry)).toMatch(/^appnet\s+10\.96\.0\.0\/16\s+10\.96\.0\.1\s+\/26\s+h9\nappnet\s+fd00:96::\/64\s+fd00:96::1\s+\/122\s+h9$/m);
    });

    it('includes the IPv6 addresses, pool and blocks in -o json', async () => {
      expect(JSON.parse(await status(registry, 'json'))).toMatchObject({
        nodes: [{ name: 'h9', ip6: 'fd00:250::19', blocks: ['10.96.0.0/26', 'fd00:96::/122'] }],
        networks: [
          { name: 'appnet', subnet: '10.96.0.0/16', settings: { ipv6Subnet: V6_POOL } },
          { key: 'fd00:96::-64', subnet: V6_POOL, gateway: 'fd00:96::1', blockSize: 122 },
        ],
        endpoints: [{ containerName: 'dual', addressV6: 'fd00:96::2' }, { containerName: 'plain' }],
      });
      expect(JSON.parse(await networkList(registry, 'json'))).toMatchObject([{ subnet: '10.96.0.0/16', nodes: ['h9'] }, { subnet: V6_POOL, nodes: ['h9'] }]);
    });
  });

  it('refuses a 2 MB policy file with a policy error (exit 2), writing nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-cli-'));
    try {
      const huge = path.join(dir, 'huge.yaml');
      writeFileSync(huge, `kind: NetworkPolicy\nname: huge\nselector: all()\ningress: []\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
      const refused = policyApply(registry, huge);
      await expect(refused).rejects.toBeInstanceOf(PolicyError);
      await expect(refused).rejects.toThrow('over the limit of 256 KiB per file');
      expect(await registry.listPolicies()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists invalid records in status, and shows the valid rest as usual', async () => {
    await deadNode('h9', new Date('2026-01-01T00:00:00Z'));
    await store.put('/sluice/v1/networks/10.97.0.0-16', 'not json{');
    const text = await status(registry);
    expect(text).toMatch(/h9\s+dead/);
    expect(text).toMatch(/INVALID RECORDS \(ignored by every agent\)\nKEY\s+PROBLEM\n\/sluice\/v1\/networks\/10\.97\.0\.0-16\s+value is not JSON: "not json\{"$/);
    await store.delete('/sluice/v1/networks/10.97.0.0-16');
    expect(await status(registry)).not.toContain('INVALID RECORDS');
  });

  describe('policy explain and dry runs', () => {
    const WEB = "kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress:\n  - action: allow\n    protocol: tcp\n    from: role == 'client'\n    ports: [80]\n";
    let dir: string;
    beforeEach(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'sluice-cli-'));
      await defineNetwork(registry, () => newNetworkRecord(parseCidr('10.96.0.0/16')!, 26, { name: 'appnet' }));
      const put = (id: string, address: string, role: string) =>
        registry.putEndpoint({ id: id.repeat(64), network: '10.96.0.0-16', node: 'h1', address, hostIfname: `slv${id.repeat(11)}`, containerId: id.repeat(64), containerName: role, labels: { role }, ports: [] });
      await put('a', '10.96.0.2', 'web');
      await put('b', '10.96.0.3', 'client');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('explains a pair by name, ID or address, as text and JSON', async () => {
      expect(await policyExplain(registry, 'client', 'aaaa', { protocol: 'tcp', port: 22 })).toBe(
        [
          'client (10.96.0.3) -> web (10.96.0.2) tcp/22: ALLOW',
          '  egress of client:  allow  (default allow: no policy with egress rules selects it)',
          '  ingress of web: allow  (default allow: same network appnet)',
        ].join('\n'),
      );
      await registry.putPolicy(parsePolicies(WEB)[0]!);
      expect(JSON.parse(await policyExplain(registry, '10.96.0.3', 'web', { protocol: 'tcp', port: 22 }, 'json'))).toMatchObject({
        verdict: 'deny',
        egress: { verdict: 'allow' },
        ingress: { verdict: 'deny', reason: { kind: 'default-deny', policies: ['web'] } },
      });
      await expect(policyExplain(registry, 'client', 'web', { protocol: 'tcp' })).rejects.toThrow('--port N is needed for tcp');
      await expect(policyExplain(registry, 'client', 'nobody', { protocol: 'icmp' })).rejects.toBeInstanceOf(NotFoundError);
    });

    it('previews apply and rm, writing nothing, then applies what it previewed', async () => {
      const file = path.join(dir, 'web.yaml');
      writeFileSync(file, WEB);
      const preview = JSON.parse(await policyApply(registry, file, { dryRun: true, output: 'json' }));
      expect(preview).toEqual({
        changes: [
          { from: 'client', to: 'web', protocol: 'tcp', ports: ['0-79', '81-65535'], before: 'allow', after: 'deny' },
          { from: 'client', to: 'web', protocol: 'udp', ports: ['0-65535'], before: 'allow', after: 'deny' },
          { from: 'client', to: 'web', protocol: 'icmp', before: 'allow', after: 'deny' },
        ],
      });
      expect(await registry.listPolicies()).toEqual([]);
      expect(await policyApply(registry, file, { dryRun: true })).toMatch(/^dry run: nothing written\nFROM\s+TO\s+PROTOCOL\s+PORTS\s+BEFORE\s+AFTER\nclient\s+web\s+tcp\s+0-79,81-65535\s+allow\s+deny$/m);
      await policyApply(registry, file);
      expect(await policyApply(registry, file, { dryRun: true })).toBe('dry run: no verdict would change');
      const removal = JSON.parse(await policyRemove(registry, 'web', { dryRun: true, output: 'json' })) as { changes: { after: string }[] };
      expect(removal.changes.map((c) => c.after)).toEqual(['allow', 'allow', 'allow']);
      expect((await registry.listPolicies()).map((p) => p.name)).toEqual(['web']);
      await expect(policyRemove(registry, 'nope', { dryRun: true })).rejects.toBeInstanceOf(NotFoundError);
    });

    it('prints every read command as JSON with -o json', async () => {
      await registry.putNode({ name: 'h1', ip: '192.0.2.1', backend: 'vxlan', version: '1.2.3', lastSeen: '2026-01-01T00:00:00Z' });
      await registry.putPolicy(parsePolicies(WEB)[0]!);
      expect(JSON.parse(await status(registry, 'json'))).toMatchObject({
        nodes: [{ name: 'h1', version: '1.2.3', alive: false, blocks: [], endpoints: 2 }],
        networks: [{ name: 'appnet', subnet: '10.96.0.0/16' }],
        endpoints: [{ containerName: 'web', policies: 'web' }, { containerName: 'client', policies: 'default' }],
        invalidRecords: [],
      });
      expect(JSON.parse(await networkList(registry, 'json'))).toEqual([expect.objectContaining({ name: 'appnet', nodes: [] })]);
      expect(JSON.parse(await policyList(registry, 'json'))).toEqual(parsePolicies(WEB));
      expect(JSON.parse(await policyGet(registry, 'web', 'json'))).toEqual(parsePolicies(WEB)[0]);
    });
  });
});
