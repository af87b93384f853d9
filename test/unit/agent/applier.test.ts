import { Applier, incrementalFirewall, type FirewallStep } from '../../../src/agent/applier';
import type { HostState } from '../../../src/agent/desired';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { DataplaneError } from '../../../src/errors';

const STATE: HostState = {
  gateways: ['10.96.0.1'],
  routes: [{ kind: 'blackhole', block: '10.96.0.0/26' }],
  firewall: { networks: new Map(), endpoints: new Map(), policies: new Map() },
};

describe('Applier', () => {
  let dataplane: RecordingDataplane;
  let fulls: boolean[];
  let applier: Applier;
  beforeEach(() => {
    dataplane = new RecordingDataplane();
    fulls = [];
    const firewall: FirewallStep = (_records, _changed, { full }) => {
      fulls.push(full);
      return dataplane.applyFirewall({ ipsets: [], filter: [], nat: [] });
    };
    applier = new Applier(dataplane, firewall);
  });
  const kernelCalls = () => dataplane.calls.map((c) => c.method).filter((m) => m !== 'applyFirewall');

  it('sends the gateways and routes once, then only what changed; the firewall step runs every time, full only at first', async () => {
    await applier.apply(STATE, undefined);
    await applier.apply(STATE, undefined);
    await applier.apply({ ...STATE, gateways: ['10.96.0.1', '10.97.0.1'] }, undefined);
    expect(kernelCalls()).toEqual(['syncGateways', 'syncRoutes', 'syncGateways']);
    expect(fulls).toEqual([true, false, false]);
  });

  it('sends everything again, with a full firewall, when asked (resync) and after a failed apply', async () => {
    await applier.apply(STATE, undefined);
    applier.applyFullNext();
    await applier.apply(STATE, undefined);
    dataplane.failNext('applyFirewall');
    await expect(applier.apply(STATE, undefined)).rejects.toThrow('injected failure');
    await applier.apply(STATE, undefined);
    await applier.apply(STATE, undefined);
    // First, asked, after the failure: three full applies; the failed one had nothing new to send but its firewall.
    expect(kernelCalls()).toEqual(['syncGateways', 'syncRoutes', 'syncGateways', 'syncRoutes', 'syncGateways', 'syncRoutes']);
    expect(fulls).toEqual([true, true, false, true, false]);
  });
});

describe('incrementalFirewall', () => {
  const endpoint = (n: number) => ({ id: `e${n}`, network: 'net', node: 'h2', address: `10.96.0.${n}`, hostIfname: `slv0000000000${n}`, labels: { role: 'web' }, ports: [] });
  const network = { key: 'net', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1' };
  let dataplane: RecordingDataplane;
  let step: FirewallStep;
  beforeEach(() => {
    dataplane = new RecordingDataplane();
    step = incrementalFirewall(dataplane, 'h1');
  });
  const records = (endpoints: ReturnType<typeof endpoint>[]) => ({
    networks: new Map([['net', network]]),
    endpoints: new Map(endpoints.map((e) => [`h2/${e.id}`, e])),
    // Web servers take from web servers: every endpoint is in a selector set, so each one changes the firewall.
    policies: new Map([['p', { kind: 'NetworkPolicy' as const, name: 'p', selector: "role == 'web'", order: 1, ingress: [{ action: 'allow' as const, from: "role == 'web'" }] }]]),
  });
  const methods = () => dataplane.calls.map((c) => c.method);

  it('writes the whole state on a full step, then only changes, equal to a full compile', async () => {
    await step(records([endpoint(2)]), undefined, { full: true });
    await step(records([endpoint(2), endpoint(3)]), new Set(['h2/e3']), { full: false });
    // Both families' states in full, then IPv4's change alone: the new endpoint has no IPv6 address.
    expect(methods()).toEqual(['applyFirewall', 'applyFirewall', 'applyFirewallChange']);
    const fresh = new RecordingDataplane();
    await incrementalFirewall(fresh, 'h1')(records([endpoint(2), endpoint(3)]), undefined, { full: true });
    expect(dataplane.firewall).toEqual(fresh.firewall);
  });

  it('refuses a change when nothing was applied whole before (the applier then makes its next step full)', async () => {
    await expect(step(records([endpoint(2)]), undefined, { full: false })).rejects.toThrow(DataplaneError);
    await step(records([endpoint(2)]), undefined, { full: true });
    expect(methods()).toEqual(['applyFirewallChange', 'applyFirewallChange', 'applyFirewall', 'applyFirewall']); // both families, each time
  });
});
