import { Applier, type FirewallStep } from '../../../src/agent/applier';
import type { HostState } from '../../../src/agent/desired';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';

const STATE: HostState = {
  gateways: ['10.96.0.1'],
  routes: [{ kind: 'blackhole', block: '10.96.0.0/26' }],
  firewall: { node: 'h1', networks: [], endpoints: [], policies: [] },
};

describe('Applier', () => {
  let dataplane: RecordingDataplane;
  let fulls: boolean[];
  let applier: Applier;
  beforeEach(() => {
    dataplane = new RecordingDataplane();
    fulls = [];
    const firewall: FirewallStep = (_input, { full }) => {
      fulls.push(full);
      return dataplane.applyFirewall({ ipsets: [], filter: [], nat: [] });
    };
    applier = new Applier(dataplane, firewall);
  });
  const kernelCalls = () => dataplane.calls.map((c) => c.method).filter((m) => m !== 'applyFirewall');

  it('sends the gateways and routes once, then only what changed; the firewall step runs every time, full only at first', async () => {
    await applier.apply(STATE);
    await applier.apply(STATE);
    await applier.apply({ ...STATE, gateways: ['10.96.0.1', '10.97.0.1'] });
    expect(kernelCalls()).toEqual(['syncGateways', 'syncRoutes', 'syncGateways']);
    expect(fulls).toEqual([true, false, false]);
  });

  it('sends everything again, with a full firewall, when asked (resync) and after a failed apply', async () => {
    await applier.apply(STATE);
    applier.applyFullNext();
    await applier.apply(STATE);
    dataplane.failNext('applyFirewall');
    await expect(applier.apply(STATE)).rejects.toThrow('injected failure');
    await applier.apply(STATE);
    await applier.apply(STATE);
    // First, asked, after the failure: three full applies; the failed one had nothing new to send but its firewall.
    expect(kernelCalls()).toEqual(['syncGateways', 'syncRoutes', 'syncGateways', 'syncRoutes', 'syncGateways', 'syncRoutes']);
    expect(fulls).toEqual([true, true, false, true, false]);
  });
});
