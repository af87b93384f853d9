/**
 * What a large cluster asks of every host: writes that change nothing a host enforces
 * (address claims, liveness renewals) cost it no dataplane call, and after a broken watch
 * (etcd restarted or compacted: every agent at once) it waits a random while before re-listing.
 */
import { relistDelayMs } from '../../../src/agent/sync';
import { policyChainName } from '../../../src/firewall/names';
import { parsePolicies } from '../../../src/policy-document/policy';
import { keys } from '../../../src/store/keys';
import { MemoryStore } from '../../../src/store/memory-store';
import { settle } from '../../helpers/fake-clock';
import { eventually, testHost, type TestHost } from '../../helpers/host';

const POLICY = parsePolicies("kind: NetworkPolicy\nname: web\nselector: role == 'web'\ningress: []\n")[0]!;

describe('Agent: writes that change nothing here', () => {
  let store: MemoryStore;
  let host: TestHost;

  beforeEach(async () => {
    store = new MemoryStore();
    // Reconciliation every hour: the minute of the liveness timer below runs the liveness alone.
    host = testHost(store, 'h1', '192.0.2.1', { agent: { reconcileIntervalMs: 3600_000 } });
    await host.agent.start();
  });
  afterEach(async () => {
    await host.agent.stop();
    await store.close();
  });

  function applied(): string[] {
    return host.dataplane.calls.map((c) => c.method);
  }

  it('makes no dataplane call for an address claim, the pool guard or a liveness renewal; a policy still applies', async () => {
    const from = applied().length;
    await store.put(keys.address('10.96.0.0-16', '10.96.1.0/26', '10.96.1.7'), JSON.stringify({ network: '10.96.0.0-16', address: '10.96.1.7', node: 'h2', kind: 'endpoint' }));
    await store.put(keys.poolGuard, '10.96.0.0-16');
    // The agent's own renewal, a minute on: its node record with a new lastSeen, its alive key put again.
    const lastSeen = async () => (await host.registry.getNode('h1'))!.record.lastSeen;
    const before = await lastSeen();
    await host.clock.advance(60_000);
    await settle();
    expect(await lastSeen()).not.toBe(before);
    expect(applied().slice(from)).toEqual([]);

    await host.registry.putPolicy(POLICY);
    // A policy is both families' firewalls.
    await eventually(() => expect(applied().slice(from)).toEqual(['applyFirewallChange', 'applyFirewallChange']));
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
    store = new MemoryStore();
  });
  afterEach(async () => {
    await host.agent.stop();
    await store.close();
  });

  it('waits its random share of the window, then lists again and applies what it missed', async () => {
    // 100 nodes, random 0.5: half of a one-second window.
    for (let n = 2; n <= 100; n++) {
      await store.put(keys.node(`h${n}`), JSON.stringify({ name: `h${n}`, ip: `198.51.100.${n}`, backend: 'vxlan', vtepMac: '0e:00:00:00:00:02', version: '0.1.0', lastSeen: '2026-11-27T12:00:00.000Z' }));
    }
    host = testHost(store, 'h1', '192.0.2.1', { agent: { random: () => 0.5 } });
    await host.agent.start();
    const firewallApplies = () => host.dataplane.calls.filter((c) => c.method.startsWith('applyFirewall')).length;
    const before = firewallApplies();

    store.engine.resetWatchers('etcd restarted');
    await host.registry.putPolicy(POLICY); // missed: the watch is broken
    await host.clock.advance(499);
    expect(firewallApplies()).toBe(before);

    await host.clock.advance(1);
    expect(firewallApplies()).toBe(before + 2); // the missed policy, in IPv4's firewall and IPv6's
    expect(host.agent.view.policies.has('web')).toBe(true);
  });
});
