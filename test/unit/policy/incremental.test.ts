/**
 * The incremental firewall against the full compile, its reference: random
 * sequences of cluster changes, and after every step the incrementally kept
 * state, and the recording dataplane fed only the changes, must render to
 * exactly the text the full compile renders to.
 */
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { PolicyError } from '../../../src/errors';
import { ipv6Change, ipv6State } from '../../../src/firewall/family';
import { isEmptyChange, type FirewallChange, type FirewallState } from '../../../src/firewall/state';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../../../src/model';
import type { Family } from '../../../src/net/ip';
import { compileFirewall } from '../../../src/policy/compile';
import { IncrementalFirewall, type ClusterRecords } from '../../../src/policy/incremental';
import type { Policy } from '../../../src/policy-document/policy';
import { protection } from '../../../src/policy/protect';
import { renderForGolden } from '../../helpers/firewall-text';
import { random } from '../../helpers/random';
import { CONTROL_PLANE, DNS_ADDRESS, appnet, dbnet, endpoint, web1 } from './fixtures';
import { pick, randomPolicy } from './random-cluster';

const NODE = 'h1';
const internalNet: NetworkRecord = {
  key: '10.98.0.0-16',
  subnet: '10.98.0.0/16',
  blockSize: 26,
  gateway: '10.98.0.1',
  name: 'locked',
  settings: { internal: true, auxAddresses: {}, ipv6Subnet: 'fd00:98::/64' },
};
/** appnet and the internal network are dual-stack, dbnet IPv4 only. */
const NETWORKS = [{ ...appnet, settings: { internal: false, auxAddresses: {}, ipv6Subnet: 'fd00:96::/64' } }, dbnet, internalNet];
const PROTECTIONS = [
  undefined,
  protection(CONTROL_PLANE, ['192.168.1.10'], '192.168.1.10'),
  protection(CONTROL_PLANE, ['192.168.1.10', '192.168.1.11', 'fd00:250::11'], '192.168.1.11'),
];

/** The cluster as the agent's view keeps it: a changed record is always a new object. */
class Cluster {
  readonly networks = new Map<string, NetworkRecord>([[appnet.key, NETWORKS[0]!]]);
  readonly endpoints = new Map<string, EndpointRecord>();
  readonly policies = new Map<string, Policy>();
  protection: ClusterRecords['protection'];
  dnsAddress: string | undefined;

  records(): ClusterRecords {
    return { networks: this.networks, endpoints: this.endpoints, policies: this.policies, protection: this.protection, dnsAddress: this.dnsAddress };
  }

  compile(family: Family): ReturnType<typeof compileFirewall> {
    return compileFirewall({
      family,
      node: NODE,
      networks: [...this.networks.values()],
      endpoints: [...this.endpoints.values()],
      policies: [...this.policies.values()],
      protection: this.protection,
      dnsAddress: this.dnsAddress,
    });
  }
}

type Step = { kind: string; endpoint?: string };

function randomLabels(rand: () => number): Labels | null {
  return rand() < 0.1 ? null : { role: pick(rand, ['web', 'db', 'client']), ...(rand() < 0.5 ? { tier: pick(rand, ['a', 'b']) } : {}) };
}

function randomPorts(rand: () => number): PortMapping[] {
  if (rand() < 0.6) return [];
  const hostPort = 8000 + Math.floor(rand() * 50);
  const hostIp = pick(rand, [undefined, undefined, '192.0.2.5', '2001:db8::5', '::']);
  return [{ proto: pick(rand, ['tcp', 'udp'] as const), containerPort: 80, hostPort, hostPortEnd: rand() < 0.2 ? hostPort + 5 : hostPort, ...(hostIp && { hostIp }) }];
}

/** One random change to the cluster; endpoint changes are the most frequent, as in a real cluster. */
function mutate(rand: () => number, cluster: Cluster, serial: { next: number }): Step {
  const roll = rand();
  const endpointKeys = [...cluster.endpoints.keys()];
  if (roll < 0.3 || endpointKeys.length < 5) {
    const id = `e${serial.next++}`;
    // Some endpoints on a network that is not (or no longer) there: they fail closed here.
    const network = pick(rand, NETWORKS);
    // Addresses repeat now and then (a stale record beside a new one): sets count them.
    const host = 2 + Math.floor(rand() * 40);
    const address = `${network.subnet.split('.').slice(0, 2).join('.')}.0.${host}`;
    const node = rand() < 0.4 ? NODE : pick(rand, ['h2', 'h3']);
    // Most endpoints of a dual-stack network have an IPv6 address too.
    const v6 = network.settings?.ipv6Subnet;
    const addressV6 = v6 !== undefined && rand() < 0.8 ? v6.replace('::/64', `::${host.toString(16)}`) : undefined;
    cluster.endpoints.set(`${node}/${id}`, { ...endpoint(id, node, network, address, randomLabels(rand), randomPorts(rand)), ...(addressV6 && { addressV6 }) });
    return { kind: 'endpoint added', endpoint: `${node}/${id}` };
  }
  if (roll < 0.45) {
    const key = pick(rand, endpointKeys);
    cluster.endpoints.delete(key);
    return { kind: 'endpoint removed', endpoint: key };
  }
  if (roll < 0.6) {
    const key = pick(rand, endpointKeys);
    cluster.endpoints.set(key, { ...cluster.endpoints.get(key)!, labels: randomLabels(rand) });
    return { kind: 'endpoint relabelled', endpoint: key };
  }
  if (roll < 0.67) {
    const key = pick(rand, endpointKeys);
    cluster.endpoints.set(key, { ...cluster.endpoints.get(key)!, ports: randomPorts(rand) });
    return { kind: 'port mappings changed', endpoint: key };
  }
  if (roll < 0.72) {
    const key = pick(rand, endpointKeys);
    // Put again unchanged: a new object, the same content.
    cluster.endpoints.set(key, { ...cluster.endpoints.get(key)! });
    return { kind: 'endpoint rewritten unchanged', endpoint: key };
  }
  if (roll < 0.8) {
    const name = `p${Math.floor(rand() * 8)}`;
    cluster.policies.set(name, randomPolicy(rand, name));
    return { kind: 'policy added or changed' };
  }
  if (roll < 0.85) {
    const names = [...cluster.policies.keys()];
    if (names.length > 0) cluster.policies.delete(pick(rand, names));
    return { kind: 'policy removed' };
  }
  if (roll < 0.89) {
    const names = [...cluster.policies.keys()];
    if (names.length > 0) {
      const name = pick(rand, names);
      cluster.policies.set(name, { ...cluster.policies.get(name)!, order: pick(rand, [1, 10, 100, 1000]) });
    }
    return { kind: 'policies reordered' };
  }
  if (roll < 0.94) {
    const network = pick(rand, NETWORKS);
    if (cluster.networks.has(network.key)) cluster.networks.delete(network.key);
    else cluster.networks.set(network.key, { ...network });
    return { kind: 'network added or removed' };
  }
  if (roll < 0.97) {
    cluster.protection = pick(rand, PROTECTIONS);
    return { kind: 'protection changed' };
  }
  cluster.dnsAddress = cluster.dnsAddress === undefined ? DNS_ADDRESS : undefined;
  return { kind: 'dns address changed' };
}

const STEPS = 700;

describe.each([4, 6] as const)('IncrementalFirewall against the full compile, IPv%i', (family) => {
  it.each([1, 2, 3, 4])('seed %i: after every step its state and the dataplane fed its changes equal the full compile', async (seed) => {
    const rand = random(seed);
    const cluster = new Cluster();
    const serial = { next: 0 };
    const incremental = new IncrementalFirewall(NODE, family);
    incremental.update(cluster.records());
    const dp = new RecordingDataplane();
    // The dataplane gets IPv6's in its own set names, as the agent gives it.
    const [inKernel, changeInKernel] = family === 4 ? [(s: FirewallState) => s, (c: FirewallChange) => c] : [ipv6State, ipv6Change];
    await dp.applyFirewall(inKernel(incremental.state()), family);
    const kinds = new Map<string, number>();
    for (let i = 0; i < STEPS; i++) {
      const step = mutate(rand, cluster, serial);
      kinds.set(step.kind, (kinds.get(step.kind) ?? 0) + 1);
      // Half the time with the agent's hint of which endpoint changed, half finding it by identity.
      const hint = step.endpoint !== undefined && rand() < 0.5 ? [step.endpoint] : undefined;
      const change = incremental.update(cluster.records(), hint);
      await dp.applyFirewallChange(changeInKernel(change), family);
      const expected = renderForGolden(cluster.compile(family));
      const where = `seed ${seed} step ${i} (${step.kind})`;
      expect(`${where}\n${renderForGolden(incremental.state())}`).toBe(`${where}\n${expected}`);
      expect(`${where}\n${renderForGolden(dp.firewalls[family])}`).toBe(`${where}\n${renderForGolden(inKernel(cluster.compile(family)))}`);
      if (step.kind === 'endpoint rewritten unchanged') expect(isEmptyChange(change)).toBe(true);
      if (step.endpoint !== undefined && !step.endpoint.startsWith(`${NODE}/`)) {
        // Remote churn is set members only: no chain, no set created or destroyed.
        expect({ where, ...change, members: [] }).toEqual({ where, ...emptyChange });
      }
    }
    // Every kind of step was taken, so none went untested.
    expect(kinds.size).toBe(11);
  });

  it('returns an empty change when nothing changed, and the endpoint delta alone for a remote container start', () => {
    const cluster = new Cluster();
    cluster.policies.set('p', { kind: 'NetworkPolicy', name: 'p', selector: "role == 'web'", order: 1, ingress: [{ action: 'allow', from: "role == 'client'" }] });
    cluster.endpoints.set('h1/web1', web1);
    const incremental = new IncrementalFirewall(NODE);
    incremental.update(cluster.records());
    expect(isEmptyChange(incremental.update(cluster.records()))).toBe(true);

    cluster.endpoints.set('h2/c', endpoint('c', 'h2', appnet, '10.96.0.77', { role: 'client' }));
    const change = incremental.update(cluster.records(), ['h2/c']);
    expect(change).toEqual({
      ...emptyChange,
      members: [{ name: expect.stringMatching(/^sluice-s-/), add: ['10.96.0.77'], remove: [] }],
    });
  });
});

const emptyChange: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };


describe('IncrementalFirewall given a policy that does not compile', () => {
  it('throws, changes nothing, and takes the cluster once the policy is gone', () => {
    const cluster = new Cluster();
    cluster.endpoints.set('h1/web1', web1);
    cluster.policies.set('p', { kind: 'NetworkPolicy', name: 'p', selector: "role == 'web'", order: 1, ingress: [{ action: 'allow', from: "role == 'client'" }] });
    const incremental = new IncrementalFirewall(NODE);
    incremental.update(cluster.records());
    const before = renderForGolden(incremental.state());
    // A corrupt store value: validated policies never hold this selector.
    cluster.policies.set('bad', { kind: 'NetworkPolicy', name: 'bad', selector: "role == 'web", order: 1, ingress: [] });
    cluster.endpoints.set('h2/c', endpoint('c', 'h2', appnet, '10.96.0.77', { role: 'client' }));
    expect(() => incremental.update(cluster.records())).toThrow(PolicyError);
    expect(renderForGolden(incremental.state())).toBe(before);
    cluster.policies.delete('bad');
    incremental.update(cluster.records());
    expect(renderForGolden(incremental.state())).toBe(renderForGolden(cluster.compile(4)));
  });
});
