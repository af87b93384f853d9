import { NotFoundError } from '../../../src/errors';
import type { EndpointRecord } from '../../../src/model';
import { compilePolicies } from '../../../src/policy/policy-chains';
import { explain, resolvePair } from '../../../src/policy/explain';
import { parsePolicies } from '../../../src/policy-document/policy';
import type { Cluster as VerdictCluster } from '../../../src/policy/verdict';
import { random } from '../../helpers/random';
import { PROBE_PORTS, type Cluster, Kernel, pick, randomCluster } from './random-cluster';
import { CLIENT_EGRESS, WEB_FROM_CLIENT, appnet, client1, client2, db1, dbnet, endpoint, web1 } from './fixtures';

function model(cluster: Cluster): VerdictCluster {
  return { networks: new Map(cluster.networks.map((n) => [n.key, n])), policies: compilePolicies(cluster.policies) };
}

describe('policy explain agrees with the compiled rules', () => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('random cluster, seed %i', (seed) => {
    const rand = random(seed);
    const cluster = randomCluster(rand, 12, 1 + Math.floor(rand() * 6));
    const kernel = new Kernel(cluster);
    const verdicts = model(cluster);
    for (let i = 0; i < 60; i++) {
      const from = pick(rand, cluster.endpoints);
      const to = pick(rand, cluster.endpoints.filter((e) => e !== from));
      const protocol = pick(rand, ['tcp', 'udp', 'icmp'] as const);
      const port = protocol === 'icmp' ? undefined : pick(rand, PROBE_PORTS);
      const expected = kernel.verdict(from, to, protocol, port);
      const got = explain(verdicts, from, to, { protocol, port });
      expect({ from: from.id, to: to.id, protocol, port, verdict: got.verdict }).toEqual({ from: from.id, to: to.id, protocol, port, verdict: expected });
    }
  });
});

describe('policy explain says why', () => {
  const cluster = (policies: string): VerdictCluster =>
    model({ networks: [appnet, dbnet], endpoints: [], policies: [...parsePolicies(WEB_FROM_CLIENT), ...parsePolicies(policies)] });
  const c = cluster(CLIENT_EGRESS);

  it('names the deciding policy and rule on each side', () => {
    expect(explain(c, client1, web1, { protocol: 'tcp', port: 8050 })).toEqual({
      verdict: 'allow',
      egress: { verdict: 'allow', reason: expect.objectContaining({ kind: 'rule', policy: 'client-egress', rule: 1 }), why: 'policy client-egress egress[1]: allow any protocol toNets 0.0.0.0/0' },
      ingress: { verdict: 'allow', reason: expect.objectContaining({ kind: 'rule', policy: 'web-from-client', rule: 0 }), why: "policy web-from-client ingress[0]: allow tcp from role == 'client' ports 80,8000-8100" },
    });
    expect(explain(c, client2, db1, { protocol: 'tcp', port: 5432 }).egress.why).toBe("policy client-egress egress[0]: deny tcp to role == 'db' ports 5432");
  });

  it('names the default that applied', () => {
    expect(explain(c, client1, web1, { protocol: 'tcp', port: 22 }).ingress.why).toBe('default deny: selected by policy web-from-client, and no rule matched');
    expect(explain(c, web1, client1, { protocol: 'tcp', port: 22 })).toMatchObject({
      verdict: 'allow',
      egress: { verdict: 'allow', why: 'default allow: no policy with egress rules selects it' },
      ingress: { verdict: 'allow', why: 'default allow: same network appnet' },
    });
    expect(explain(c, db1, client1, { protocol: 'udp', port: 53 }).ingress).toMatchObject({ verdict: 'deny', why: 'default deny: from another sluice network (dbnet)' });
    const unknown = endpoint('new1', 'h1', appnet, '10.96.0.9', null);
    expect(explain(c, unknown, client1, { protocol: 'icmp' })).toMatchObject({ verdict: 'deny', egress: { verdict: 'deny', why: 'fail closed: labels not yet known' } });
  });
});

describe('resolving FROM and TO', () => {
  const named = (e: EndpointRecord, name: string, id: string): EndpointRecord => ({ ...e, containerName: name, containerId: id });
  const a = named(web1, 'web', 'aaaa1111');
  const b = named(client1, 'client', 'bbbb2222');
  const bOnDb = named(endpoint('client1db', 'h1', dbnet, '10.97.0.3', { role: 'client' }), 'client', 'bbbb2222');
  const twin = named(client2, 'web', 'cccc3333');

  it('finds endpoints by name, ID prefix or address, preferring the pair on one network', () => {
    expect(resolvePair([a, b], 'web', 'bbbb')).toEqual([a, b]);
    expect(resolvePair([a, b], '10.96.0.3', '/web')).toEqual([b, a]);
    expect(resolvePair([a, b, bOnDb], 'client', 'web')).toEqual([b, a]);
  });

  it('refuses an ambiguous or unknown name, listing the candidates', () => {
    expect(() => resolvePair([a, b, twin], 'web', 'client')).toThrow('web is ambiguous: web 10.96.0.2 on h1 (container aaaa1111); web 10.96.0.66 on h2 (container cccc3333); name an address instead');
    expect(() => resolvePair([a, b], 'nobody', 'web')).toThrow(NotFoundError);
  });
});
