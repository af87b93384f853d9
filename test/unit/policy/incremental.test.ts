/**
 * The incremental firewall against the full compile, its reference: random
 * sequences of cluster changes, and after every step the incrementally kept
 * state, and the recording dataplane fed only the changes, must render to
 * exactly the text the full compile renders to.
 */
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { PolicyError } from '../../../src/errors';
import type { FirewallChange } from '../../../src/firewall/state';
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../../../src/model';
import { compileFirewall } from '../../../src/policy/compile';
import { IncrementalFirewall, type ClusterRecords } from '../../../src/policy/incremental';
import type { Policy } from '../../../src/policy-document/policy';
import { protection } from '../../../src/policy/protect';
import { renderForGolden } from '../../helpers/firewall-text';
import { random } from '../../helpers/random';
import { CONTROL_PLANE, DNS_ADDRESS, appnet, dbnet, endpoint, web1 } from './fixtures';
import { pick, randomPolicy } from './random-cluster';

const NODE = 'h1';
const internalNet: NetworkRecord = { key: '10.98.0.0-16', subnet: '10.98.0.0/16', blockSize: 26, gateway: '10.98.0.1', name: 'locked', settings: { internal: true, auxAddresses: {} } };
const NETWORKS = [appnet, dbnet, internalNet];
const PROTECTIONS = [undefined, protection(CONTROL_PLANE, ['192.168.1.10'], '192.168.1.10'), protection(CONTROL_PLANE, ['192.168.1.10', '192.168.1.11'], '192.168.1.11')];

/** The cluster as the agent's view keeps it: a changed record is always a new object. */
class Cluster {
  readonly networks = new Map<string, NetworkRecord>([[appnet.key, appnet]]);
  readonly endpoints = new Map<string, EndpointRecord>();
  readonly policies = new Map<string, Policy>();
  protection: ClusterRecords['protection'];
  dnsAddress: string | undefined;

  records(): ClusterRecords {
    return { networks: this.networks, endpoints: this.endpoints, policies: this.policies, protection: this.protection, dnsAddress: this.dnsAddress };
  }

  compile(): ReturnType<typeof compileFirewall> {
    return compileFirewall({
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
  return [{ proto: pick(rand, ['tcp', 'udp'] as const), containerPort: 80, hostPort, hostPortEnd: rand() < 0.2 ? hostPort + 5 : hostPort }];
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
    const address = `${network.subnet.split('.').slice(0, 2).join('.')}.0.${2 + Math.floor(rand() * 40)}`;
    const node = rand() < 0.4 ? NODE : pick(rand, ['h2', 'h3']);
    cluster.endpoints.set(`${node}/${id}`, endpoint(id, node, network, address, randomLabels(rand), randomPorts(rand)));
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

describe('IncrementalFirewall against the full compile', () => {
  it.each([1, 2, 3, 4])('seed %i: after every step its state and the dataplane fed its changes equal the full compile', async (seed) => {
    const rand = random(seed);
    const cluster = new Cluster();
    const serial = { next: 0 };
    const incremental = new IncrementalFirewall(NODE);
    incremental.update(cluster.records());
    const dp = new RecordingDataplane();
    await dp.applyFirewall(incremental.state());
    const kinds = new Map<string, number>();
    for (let i = 0; i < STEPS; i++) {
      const step = mutate(rand, cluster, serial);
      kinds.set(step.kind, (kinds.get(step.kind) ?? 0) + 1);
      // Half the time with the agent's hint of which endpoint changed, half finding it by identity.
      const hint = step.endpoint !== undefined && rand() < 0.5 ? [step.endpoint] : undefined;
      const change = incremental.update(cluster.records(), hint);
      await dp.applyFirewallChange(change);
      const expected = renderForGolden(cluster.compile());
      const where = `seed ${seed} step ${i} (${step.kind})`;
      expect(`${where}\n${renderForGolden(incremental.state())}`).toBe(`${where}\n${expected}`);
      expect(`${where}\n${renderForGolden(dp.firewall)}`).toBe(`${where}\n${expected}`);
      if (step.kind === 'endpoint rewritten unchanged') expect(isEmpty(change)).toBe(true);
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
    expect(isEmpty(incremental.update(cluster.records()))).toBe(true);

    cluster.endpoints.set('h2/c', endpoint('c', 'h2', appnet, '10.96.0.77', { role: 'client' }));
    const change = incremental.update(cluster.records(), ['h2/c']);
    expect(change).toEqual({
      ...emptyChange,
      members: [{ name: expect.stringMatching(/^sluice-s-/), add: ['10.96.0.77'], remove: [] }],
    });
  });
});

const emptyChange: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };

function isEmpty(change: FirewallChange): boolean {
  return Object.values(change).every((list: unknown[]) => list.length === 0);
}

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
    expect(renderForGolden(incremental.state())).toBe(renderForGolden(cluster.compile()));
  });
});
