/**
 * What a large cluster asks of every host: writes that change nothing a host enforces
 * (address claims, liveness renewals) cost it no dataplane call, and after a broken watch
 * (etcd restarted or compacted: every agent at once) it waits a random while before re-listing.
 */
import { relistDelayMs } from '../../../src/agent/agent';
import { policyChainName } from '../../../src/firewall/names';
import { parsePolicies } from '../../../src/policy/policy';
import { keys } from '../../../src/store/keys';
import { MemoryStore } from '../../../src/store/memory-store';
import { eventually, testHost, type TestHost } from '../../helpers/host';

const POLICY = parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: []\n")[0]!;

describe('Agent: writes that change nothing here', () => {
  let store: MemoryStore;
  let host: TestHost;

  beforeEach(async () => {
    store = new MemoryStore();
    host = testHost(store, 'h1', '192.0.2.1');
    await host.agent.start();
  });
  afterEach(async () => {
    await host.agent.stop();
    await store.close();
  });

  /** Lets the watch deliver and any apply it starts run. */
  async function settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise(setImmediate);
  }

  function applied(): string[] {
    return host.dataplane.calls.map((c) => c.method);
  }

  it('makes no dataplane call for an address claim, the pool guard or a liveness renewal; a policy still applies', async () => {
    const from = applied().length;
    await store.put(keys.address('10.96.0.0-16', '10.96.1.0/26', '10.96.1.7'), JSON.stringify({ network: '10.96.0.0-16', address: '10.96.1.7', node: 'h2', kind: 'endpoint' }));
    await store.put(keys.poolGuard, '10.96.0.0-16');
    // The agent's own renewal: its node record with a new lastSeen, its alive key put again.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await (host.agent as unknown as { register(): Promise<void> }).register();
    await settle();
    expect(applied().slice(from)).toEqual([]);

    await host.registry.putPolicy(POLICY);
    await eventually(() => expect(applied().slice(from)).toEqual(['applyFirewall']));
    expect(host.dataplane.firewall.filter.map((c) => c.name)).toContain(policyChainName('ingress', POLICY.name));
  });
});

describe('Agent: re-listing after a broken watch', () => {
  it('spreads re-lists over a window that grows with the cluster, up to 2 s', () => {
    expect(relistDelayMs(3, 0.5)).toBe(15);
    expect(relistDelayMs(100, 0.5)).toBe(500);
    expect(relistDelayMs(100, 0.999)).toBe(999);
    expect(relistDelayMs(5000, 0.999)).toBe(1998);
    expect(relistDelayMs(5000, 0)).toBe(0);
  });
});

describe('Agent: re-listing after a broken watch, with the memory store', () => {
  let store: MemoryStore;
  let host: TestHost;

  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    store = new MemoryStore();
  });
  afterEach(async () => {
    await host.agent.stop();
    await store.close();
    jest.useRealTimers();
  });

  it('waits its random share of the window, then lists again and applies what it missed', async () => {
    // 100 nodes, random 0.5: half of a one-second window.
    for (let n = 2; n <= 100; n++) {
      await store.put(keys.node(`h${n}`), JSON.stringify({ name: `h${n}`, ip: `198.51.100.${n}`, backend: 'vxlan', vtepMac: '0e:00:00:00:00:02', version: '0.1.0', lastSeen: '2026-11-27T12:00:00.000Z' }));
    }
    host = testHost(store, 'h1', '192.0.2.1', { agent: { random: () => 0.5 } });
    await host.agent.start();
    const firewallApplies = () => host.dataplane.calls.filter((c) => c.method === 'applyFirewall').length;
    const before = firewallApplies();

    store.engine.resetWatchers('etcd restarted');
    await host.registry.putPolicy(POLICY); // missed: the watch is broken
    await jest.advanceTimersByTimeAsync(499);
    expect(firewallApplies()).toBe(before);

    await jest.advanceTimersByTimeAsync(1);
    for (let i = 0; i < 20 && firewallApplies() === before; i++) await new Promise(setImmediate);
    expect(firewallApplies()).toBe(before + 1);
    expect(host.agent.view.policies.has('web')).toBe(true);
  });
});
