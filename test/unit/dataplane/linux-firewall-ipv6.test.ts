import { LinuxDataplane } from '../../../src/dataplane/linux/linux-dataplane';
import type { FirewallState } from '../../../src/firewall/state';
import { ScriptedRunner } from './scripted-runner';

/** A host whose iptables Sluice has written before, ip6tables never, with a stale IPv6 set beside IPv4's. */
const ipsetSave =
  'create sluice-a hash:ip family inet hashsize 1024 maxelem 1048576\nadd sluice-a 10.96.0.6\n' +
  'create sluice6old hash:ip family inet6 hashsize 1024 maxelem 1048576\nadd sluice6old fd00:96::9\n';

const state = (prefix: string, member: string): FirewallState => ({
  ipsets: [{ name: `${prefix}a`, type: 'hash:ip', members: [member] }],
  filter: [{ name: 'SLUICE-FORWARD', rules: [{ comment: 'drop a', matches: [{ kind: 'set', set: `${prefix}a`, sides: 'src' }], action: { kind: 'DROP' } }] }],
  nat: [],
});

describe('the Linux dataplane with an IPv6 firewall', () => {
  it('writes it with ip6tables and inet6 sets, its hooks included, leaving IPv4 to iptables and its sets', async () => {
    const runner = new ScriptedRunner((call) => (call.command === 'ipset' && call.args[0] === 'save' ? ipsetSave : ''));
    const dp = new LinuxDataplane(runner, () => Promise.resolve());
    await dp.applyFirewall(state('sluice-', '10.96.0.6'));
    runner.calls.length = 0;

    await dp.applyFirewall(state('sluice6', 'fd00:96::6'), 6);
    expect(runner.commandLines).toEqual([
      'ip6tables-save -t filter',
      'ip6tables-save -t nat',
      'ipset save',
      'ipset restore -exist',
      'ip6tables-restore --noflush --wait=10',
      'ip6tables-restore --noflush --wait=10',
      'ipset restore -exist',
    ]);
    const [, , , created, filter, nat, destroyed] = runner.calls.map((c) => c.input);
    expect(created).toBe('create sluice6a hash:ip family inet6 hashsize 1024 maxelem 1048576\nadd sluice6a fd00:96::6\n');
    expect(filter).toContain('-I FORWARD 1 -m comment --comment "sluice hook" -j SLUICE-FORWARD\n');
    expect(nat).toContain('-I OUTPUT 1 -m addrtype --dst-type LOCAL ! -d ::1/128 -m comment --comment "sluice hook" -j SLUICE-DNAT\n');
    expect(destroyed).toBe('destroy sluice6old\n');

    runner.calls.length = 0;
    await dp.applyFirewallChange({ createdSets: [], members: [{ name: 'sluice6a', add: ['fd00:96::7/128'], remove: [] }], chains: [], removedChains: [], destroyedSets: [] }, 6);
    expect(runner.calls.map((c) => [c.command, ...c.args, c.input].join(' '))).toEqual(['ipset restore -exist add sluice6a fd00:96::7\n']);

    runner.calls.length = 0;
    await dp.verifyFirewall();
    expect(runner.commandLines.filter((line) => line.includes('tables-save')).sort()).toEqual([
      'ip6tables-save -t filter',
      'ip6tables-save -t nat',
      'iptables-save -t filter',
      'iptables-save -t nat',
    ]);
  });

  it('leaves IPv6 alone on a kernel without it (ipv6.disable=1): no ip6tables to fill, no IPv6 to guard', async () => {
    const runner = new ScriptedRunner((call) => (call.command === 'ipset' && call.args[0] === 'save' ? ipsetSave : ''));
    const dp = new LinuxDataplane(runner, () => Promise.resolve(), false);
    await dp.applyFirewall(state('sluice6', 'fd00:96::6'), 6);
    await dp.applyFirewallChange({ createdSets: [], members: [{ name: 'sluice6a', add: ['fd00:96::7'], remove: [] }], chains: [], removedChains: [], destroyedSets: [] }, 6);
    expect(runner.commandLines).toEqual([]);
    await dp.applyFirewall(state('sluice-', '10.96.0.6'));
    expect(runner.commandLines).toContain('iptables-restore --noflush --wait=10');
  });
});
