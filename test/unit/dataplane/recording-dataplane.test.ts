import { DataplaneError } from '../../../src/errors';
import { RecordingDataplane } from '../../../src/dataplane/fake/recording-dataplane';
import { endpointIfnames, vxlanMac } from '../../../src/firewall/names';
import type { Rule } from '../../../src/firewall/rule';
import type { FirewallChange, FirewallState } from '../../../src/firewall/state';

const link = { ...endpointIfnames('abcdef0123456789'), address: '10.96.0.5', mac: '02:73:0a:60:00:05', mtu: 1500 };

describe('RecordingDataplane', () => {
  it('holds endpoints like a host: a veth name in use refused, absent remove is fine', async () => {
    const dp = new RecordingDataplane();
    await dp.addEndpoint(link);
    await expect(dp.addEndpoint({ ...link, address: '10.96.0.6' })).rejects.toThrow(/veth slvabcdef01234 exists already/);
    expect(dp.endpoints.get('slvabcdef01234')?.address).toBe('10.96.0.5');
    await expect(dp.listEndpoints()).resolves.toEqual(['slvabcdef01234']);
    await dp.removeEndpoint('slvabcdef01234');
    await dp.removeEndpoint('slvabcdef01234');
    expect(dp.endpoints.size).toBe(0);
  });

  it('records calls with copies of their arguments', async () => {
    const dp = new RecordingDataplane();
    const gateways = ['10.96.0.1'];
    await dp.syncGateways(gateways);
    gateways.push('10.97.0.1');
    expect(dp.calls).toEqual([{ method: 'syncGateways', args: [['10.96.0.1']] }]);
    expect([...dp.gateways]).toEqual(['10.96.0.1']);
  });

  it('fails the next call of a method once per injection, changing nothing', async () => {
    const dp = new RecordingDataplane();
    dp.failNext('addEndpoint');
    dp.failNext('addEndpoint', new DataplaneError('RTNETLINK answers: File exists'));
    await expect(dp.addEndpoint(link)).rejects.toThrow('injected failure in addEndpoint');
    await expect(dp.addEndpoint(link)).rejects.toThrow('File exists');
    expect(dp.endpoints.size).toBe(0);
    await dp.addEndpoint(link);
    expect(dp.endpoints.size).toBe(1);
    expect(dp.callsTo('addEndpoint')).toHaveLength(3);
  });

  it('keeps block routes by canonical block, exactly the last set given', async () => {
    const dp = new RecordingDataplane();
    await dp.syncRoutes([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'host-gw', block: '10.96.1.7/26', via: '192.168.1.2' },
    ]);
    expect([...dp.routes.keys()]).toEqual(['10.96.0.0/26', '10.96.1.0/26']);
    await dp.syncRoutes([{ kind: 'blackhole', block: '10.96.0.0/26' }]);
    expect([...dp.routes.keys()]).toEqual(['10.96.0.0/26']);
    await expect(dp.syncRoutes([{ kind: 'blackhole', block: 'nope' }])).rejects.toThrow(DataplaneError);
  });

  it('holds dual-stack endpoints, refusing a half or a malformed IPv6 side as the Linux dataplane does', async () => {
    const dp = new RecordingDataplane();
    await dp.init();
    await dp.addEndpoint(link);
    expect(dp.ipv6Forwarding).toBe(false);
    await dp.removeEndpoint(link.hostIfname);
    await dp.addEndpoint({ ...link, addressV6: 'fd00:96::5', gatewayV6: 'fd00:96::1' });
    expect(dp.endpoints.get(link.hostIfname)).toMatchObject({ addressV6: 'fd00:96::5', gatewayV6: 'fd00:96::1' });
    expect(dp.ipv6Forwarding).toBe(true);
    const other = { ...link, ...endpointIfnames('0123456789abcdef') };
    await expect(dp.addEndpoint({ ...other, addressV6: 'fd00:96::6' })).rejects.toThrow(/needs its network's IPv6 gateway/);
    await expect(dp.addEndpoint({ ...other, addressV6: 'fd00:96::6', gatewayV6: '10.96.0.1' })).rejects.toThrow(/not an IPv6 address/);
    expect([...dp.endpoints.keys()]).toEqual([link.hostIfname]);
  });

  it('keeps IPv6 gateways and routes in canonical form; an IPv6 route turns IPv6 forwarding on', async () => {
    const dp = new RecordingDataplane();
    await dp.syncGateways(['10.96.0.1', 'FD00:96:0::1']);
    expect([...dp.gateways]).toEqual(['10.96.0.1', 'fd00:96::1']);
    await expect(dp.syncGateways(['fd00:96::1/64'])).rejects.toThrow(/not an IP address/);
    expect([...dp.gateways]).toEqual(['10.96.0.1', 'fd00:96::1']);
    await dp.syncRoutes([{ kind: 'blackhole', block: '10.96.0.0/26' }]);
    expect(dp.ipv6Forwarding).toBe(false);
    await dp.syncRoutes([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'host-gw', block: 'FD00:96::47/122', via: 'fd00:250:0::2' },
    ]);
    expect([...dp.routes.values()]).toEqual([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'host-gw', block: 'fd00:96::40/122', via: 'fd00:250::2' },
    ]);
    expect(dp.ipv6Forwarding).toBe(true);
    await expect(dp.syncRoutes([{ kind: 'host-gw', block: 'fd00:96::40/122', via: '192.168.1.2' }])).rejects.toThrow(/not an IPv6 address/);
    expect(dp.routes.size).toBe(2);
  });

  it('needs the VXLAN device before VXLAN routes, and drops them when the device is re-created', async () => {
    const dp = new RecordingDataplane();
    const route = { kind: 'vxlan' as const, block: '10.96.2.0/26', nodeIp: '192.168.2.2', vtepMac: '0e:00:00:00:00:01', mtu: 1450 };
    await expect(dp.syncRoutes([route])).rejects.toThrow(/ensureVxlan/);
    const device = { vni: 1, localIp: '192.168.1.1', port: 8472, mtu: 1450 };
    await expect(dp.ensureVxlan(device)).resolves.toEqual({ mac: vxlanMac(1, '192.168.1.1') });
    await dp.syncRoutes([route]);
    await dp.ensureVxlan({ ...device, mtu: 1400 });
    expect(dp.routes.size).toBe(1);
    await dp.ensureVxlan({ ...device, vni: 2 });
    expect(dp.routes.size).toBe(0);
  });

  it('accepts and rejects firewall states as the Linux dataplane does', async () => {
    const dp = new RecordingDataplane();
    const drop: Rule = { comment: 'drop a', matches: [{ kind: 'set', set: 'sluice-a', sides: 'src' }], action: { kind: 'DROP' } };
    const state: FirewallState = { ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.5'] }], filter: [{ name: 'SLUICE-FORWARD', rules: [drop] }], nat: [] };
    await dp.applyFirewall(state);
    expect(dp.firewall).toEqual(state);
    const missing: Rule = { comment: 'missing', matches: [], action: { kind: 'jump', chain: 'SLUICE-missing' } };
    await expect(dp.applyFirewall({ ...state, filter: [{ name: 'SLUICE-FORWARD', rules: [missing] }] })).rejects.toThrow(DataplaneError);
    expect(dp.firewall).toEqual(state);
  });

  it('applies changes as the Linux dataplane does: members in set order, refused when the applied state is not known', async () => {
    const dp = new RecordingDataplane();
    const none: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };
    const change: FirewallChange = { ...none, members: [{ name: 'sluice-a', add: ['10.96.0.10', '10.96.0.2'], remove: ['10.96.0.5'] }] };
    await expect(dp.applyFirewallChange(change)).rejects.toThrow(/apply the full state/);
    const state: FirewallState = { ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.5', '10.96.0.9'] }], filter: [], nat: [] };
    await dp.applyFirewall(state);
    await dp.applyFirewallChange(change);
    expect(dp.firewall.ipsets).toEqual([{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.2', '10.96.0.9', '10.96.0.10'] }]);
    // Invalid: rejected, nothing changed.
    await expect(dp.applyFirewallChange({ ...none, destroyedSets: ['sluice-gone'] })).rejects.toThrow(DataplaneError);
    expect(dp.firewall.ipsets[0]!.members).toEqual(['10.96.0.2', '10.96.0.9', '10.96.0.10']);
    // After damage is reported, or a failed write, only a full apply is taken.
    dp.damageFirewall();
    await dp.verifyFirewall();
    await expect(dp.applyFirewallChange(none)).rejects.toThrow(/apply the full state/);
    await dp.applyFirewall(state);
    dp.failNext('applyFirewallChange');
    await expect(dp.applyFirewallChange(none)).rejects.toThrow(/injected/);
    await expect(dp.applyFirewallChange(none)).rejects.toThrow(/apply the full state/);
    await dp.applyFirewall(state);
    await expect(dp.applyFirewallChange(none)).resolves.toBeUndefined();
  });

  it('reports simulated out-of-band damage once, until the next apply repairs it', async () => {
    const dp = new RecordingDataplane();
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
    dp.damageFirewall();
    await expect(dp.verifyFirewall()).resolves.toEqual(['filter chain SLUICE-FORWARD was flushed out of band']);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
    dp.damageFirewall('ipset sluice-a is missing');
    await dp.applyFirewall({ ipsets: [], filter: [], nat: [] });
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  it('keeps an IPv6 firewall beside the IPv4 one, each with its own applied state, damage and failures', async () => {
    const dp = new RecordingDataplane();
    const none: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };
    const v4: FirewallState = { ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.5'] }], filter: [], nat: [] };
    const v6: FirewallState = { ipsets: [{ name: 'sluice6a', type: 'hash:ip', members: ['fd00:96::5'] }], filter: [], nat: [] };
    await dp.applyFirewall(v4);
    // An IPv6 change needs an IPv6 state, whatever IPv4 has; IPv4's state is not one.
    await expect(dp.applyFirewallChange(none, 6)).rejects.toThrow(/apply the full state/);
    await expect(dp.applyFirewall(v4, 6)).rejects.toThrow(/not Sluice's for IPv6/);
    await dp.applyFirewall(v6, 6);
    await dp.applyFirewallChange({ ...none, members: [{ name: 'sluice6a', add: ['fd00:96::9'], remove: [] }] }, 6);
    await expect(dp.applyFirewallChange({ ...none, members: [{ name: 'sluice6a', add: ['10.96.0.9'], remove: [] }] }, 6)).rejects.toThrow(/not an IPv6 address/);
    expect(dp.firewalls[6].ipsets).toEqual([{ name: 'sluice6a', type: 'hash:ip', members: ['fd00:96::5', 'fd00:96::9'] }]);
    expect(dp.firewall).toEqual(v4);
    // Damage and failures of one family leave the other's changes going.
    dp.damageFirewall('IPv6 filter chain SLUICE-FORWARD was flushed out of band', 6);
    await expect(dp.verifyFirewall()).resolves.toEqual(['IPv6 filter chain SLUICE-FORWARD was flushed out of band']);
    await expect(dp.applyFirewallChange(none, 6)).rejects.toThrow(/apply the full state/);
    await expect(dp.applyFirewallChange(none)).resolves.toBeUndefined();
    await dp.applyFirewall(v6, 6);
    dp.failNext('applyFirewallChange');
    await expect(dp.applyFirewallChange(none)).rejects.toThrow(/injected/);
    await expect(dp.applyFirewallChange(none)).rejects.toThrow(/apply the full state/);
    await expect(dp.applyFirewallChange(none, 6)).resolves.toBeUndefined();
  });

  it('answers on-link and MTU questions from its options', async () => {
    const dp = new RecordingDataplane({ onLink: ['192.168.1.2'], mtu: 9000 });
    await expect(dp.isOnLink('192.168.1.2')).resolves.toBe(true);
    await expect(dp.isOnLink('10.0.0.1')).resolves.toBe(false);
    await expect(dp.mtuTowards('10.0.0.1')).resolves.toBe(9000);
    await dp.init();
    expect(dp.initialized).toBe(true);
  });
});
