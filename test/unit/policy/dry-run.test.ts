import { dryRun, type Change } from '../../../src/policy/dry-run';
import { parsePolicies } from '../../../src/policy-document/policy';
import { random } from '../../helpers/random';
import { PROBE_PORTS, Kernel, pick, randomCluster, randomPolicy } from './random-cluster';
import { WEB_FROM_CLIENT, appnet, client1, client2, dbnet, web1 } from './fixtures';

/** Whether `changes` says (from, to, protocol, port) flips, and to what. */
function listed(changes: Change[], from: string, to: string, protocol: string, port: number | undefined): string | undefined {
  const hit = changes.find(
    (c) =>
      c.from === from &&
      c.to === to &&
      c.protocol === protocol &&
      (c.ports === undefined ||
        c.ports.some((p) => {
          const [first, last] = String(p).split('-').map(Number);
          return port! >= first! && port! <= (last ?? first)!;
        })),
  );
  return hit && `${hit.before}>${hit.after}`;
}

describe('policy dry-run lists exactly the flips of the compiled rules', () => {
  it.each(Array.from({ length: 20 }, (_, i) => i + 1))('random change, seed %i', (seed) => {
    const rand = random(seed * 7919);
    const before = randomCluster(rand, 10, 1 + Math.floor(rand() * 5));
    // Replace a policy, add one, or remove one: what apply and rm do.
    const edit = pick(rand, ['replace', 'add', 'remove']);
    const victim = pick(rand, before.policies).name;
    const policies =
      edit === 'remove'
        ? before.policies.filter((p) => p.name !== victim)
        : [...before.policies.filter((p) => edit === 'add' || p.name !== victim), randomPolicy(rand, edit === 'add' ? 'new' : victim)];
    const after = { ...before, policies };
    const changes = dryRun(before.networks, before.endpoints, before.policies, after.policies);
    const [was, willBe] = [new Kernel(before), new Kernel(after)];
    for (const from of before.endpoints) {
      for (const to of before.endpoints) {
        if (from === to) continue;
        for (const protocol of ['tcp', 'udp', 'icmp'] as const) {
          for (const port of protocol === 'icmp' ? [undefined] : PROBE_PORTS) {
            const [b, a] = [was.verdict(from, to, protocol, port), willBe.verdict(from, to, protocol, port)];
            const flip = b === a ? undefined : `${b}>${a}`;
            expect({ from: from.containerName, to: to.containerName, protocol, port, flip: listed(changes, from.containerName!, to.containerName!, protocol, port) }).toEqual({
              from: from.containerName,
              to: to.containerName,
              protocol,
              port,
              flip,
            });
          }
        }
      }
    }
  });
});

describe('policy dry-run output', () => {
  const named = [
    { ...web1, containerName: 'web' },
    { ...client1, containerName: 'client' },
    { ...client2, containerName: 'client2', labels: { role: 'other' } },
  ];

  it('lists the pairs, protocols and port ranges that flip, and nothing else', () => {
    expect(dryRun([appnet, dbnet], named, [], parsePolicies(WEB_FROM_CLIENT))).toEqual([
      { from: 'client', to: 'web', protocol: 'tcp', ports: ['0-79', '81-7999', '8101-65535'], before: 'allow', after: 'deny' },
      { from: 'client', to: 'web', protocol: 'udp', ports: ['0-65535'], before: 'allow', after: 'deny' },
      { from: 'client2', to: 'web', protocol: 'tcp', ports: ['0-65535'], before: 'allow', after: 'deny' },
      { from: 'client2', to: 'web', protocol: 'udp', ports: ['0-65535'], before: 'allow', after: 'deny' },
    ]);
    expect(dryRun([appnet, dbnet], named, parsePolicies(WEB_FROM_CLIENT), parsePolicies(WEB_FROM_CLIENT))).toEqual([]);
  });

  it('tells apart endpoints with equal labels that a CIDR rule splits', () => {
    const neighbour = { ...client1, id: 'client9', address: '10.96.0.9', hostIfname: 'slvclient9', containerName: 'client9' };
    const policy = parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: [{action: allow, fromNets: [10.96.0.0/30]}]\n");
    expect(dryRun([appnet], [named[0]!, named[1]!, neighbour], [], policy).map((c) => `${c.from}>${c.to} ${c.protocol}`)).toEqual([
      'client9>web tcp',
      'client9>web udp',
      'client9>web icmp',
    ]);
  });

});
