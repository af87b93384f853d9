/**
 * The IPv6 firewall against the real kernel, beside the IPv4 one, inside the
 * throwaway namespace of scripts/in-netns.sh (this namespace plays the host
 * and forwards IPv6 between two "containers"):
 *
 *   c1 fd00:a::2/64 ─ veth ─ fd00:a::1  host  fd00:b::1 ─ veth ─ fd00:b::2/64, fd00:b::3/64 c2
 */
import { SpawnRunner } from '../../src/dataplane/linux/command-runner';
import { LinuxDataplane, writeProcSys } from '../../src/dataplane/linux/linux-dataplane';
import { ipv6Change, ipv6SetName, ipv6State } from '../../src/firewall/family';
import { LOCAL_SET } from '../../src/firewall/names';
import type { Action, Match, Rule } from '../../src/firewall/rule';
import type { FirewallChange, FirewallState } from '../../src/firewall/state';
import type { EndpointRecord, Labels, NetworkRecord } from '../../src/model';
import { compileFirewall } from '../../src/policy/compile';
import { IncrementalFirewall, type ClusterRecords } from '../../src/policy/incremental';
import { parsePolicies, type Policy } from '../../src/policy-document/policy';
import { Netns, TapRunner, firewallText, sh } from './kernel';
import { assertThrowawayNetns } from './netns-guard';

assertThrowawayNetns();
jest.setTimeout(60_000);

const tap = new TapRunner(new SpawnRunner());
const dp = new LinuxDataplane(tap, writeProcSys);
let c1: Netns;
let c2: Netns;

const rule = (comment: string, action: Action, ...matches: Match[]): Rule => ({ comment, matches, action });
const none: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };

// IPv4's state, applied first and expected untouched by everything IPv6 does.
const v4: FirewallState = {
  ipsets: [{ name: 'sluice-it-nets', type: 'hash:net', members: ['10.96.0.0/26'] }],
  filter: [{ name: 'SLUICE-FORWARD', rules: [rule('v4 nets', { kind: 'RETURN' }, { kind: 'set', set: 'sluice-it-nets', sides: 'src' })] }],
  nat: [],
};
const forward6 = (...extra: Rule[]) => ({
  name: 'SLUICE-FORWARD',
  rules: [...extra, rule('v6 peers', { kind: 'jump', chain: 'SLUICE-it-peers' }, { kind: 'set', set: 'sluice6it-peers', sides: 'src' })],
});
const v6: FirewallState = {
  ipsets: [
    { name: 'sluice6it-peers', type: 'hash:ip', members: [] },
    { name: 'sluice6it-nets', type: 'hash:net', members: ['fd00:a::/64', 'fd00:b::2/128'] },
  ],
  filter: [forward6(), { name: 'SLUICE-it-peers', rules: [rule('drop peers', { kind: 'DROP' })] }],
  nat: [{ name: 'SLUICE-POSTROUTING', rules: [rule('v6 masquerade', { kind: 'MASQUERADE' }, { kind: 'set', set: 'sluice6it-nets', sides: 'src' }, { kind: 'out-interface', name: 'it6-none' })] }],
};
const echoToC2 = rule('drop echo to c2', { kind: 'DROP' }, { kind: 'protocol', protocol: 'icmp' }, { kind: 'icmp-type', type: 128 }, { kind: 'destination', address: 'fd00:b::2' });

const ipv4Text = () => firewallText('iptables', 'sluice-');
const ipv6Text = () => firewallText('ip6tables', 'sluice6');

/** No duplicate address detection on either end: a tentative link-local address holds up forwarding for seconds. */
function link(ns: Netns, host: string, hostAddress: string, address: string): void {
  sh('ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
  sh('sysctl', '-qw', `net.ipv6.conf.${host}.accept_dad=0`);
  ns.sh('sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0');
  sh('ip', 'address', 'add', `${hostAddress}/64`, 'dev', host);
  sh('ip', 'link', 'set', host, 'up');
  ns.sh('ip', 'address', 'add', `${address}/64`, 'dev', 'eth0');
  ns.sh('ip', 'link', 'set', 'eth0', 'up');
  ns.sh('ip', '-6', 'route', 'add', 'default', 'via', hostAddress);
}

beforeAll(async () => {
  c1 = new Netns('c1v6');
  c2 = new Netns('c2v6');
  sh('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
  link(c1, 'it6-a0', 'fd00:a::1', 'fd00:a::2');
  link(c2, 'it6-b0', 'fd00:b::1', 'fd00:b::2');
  c2.sh('ip', 'address', 'add', 'fd00:b::3/64', 'dev', 'eth0');
  await dp.init();
  await dp.applyFirewall(v4);
});

afterAll(() => {
  c1.delete();
  c2.delete();
});

describe('an IPv6 firewall beside the IPv4 one', () => {
  it('goes to ip6tables and inet6 sets with its hooks, and leaves IPv4 as it was', async () => {
    const before = ipv4Text();
    expect(sh('ip6tables-save')).not.toContain('sluice hook');
    await dp.applyFirewall(v6, 6);
    const filter = sh('ip6tables-save', '-t', 'filter');
    expect(filter).toContain('-A SLUICE-FORWARD -m comment --comment "v6 peers" -m set --match-set sluice6it-peers src -j SLUICE-it-peers');
    expect(filter).toContain('-A FORWARD -m comment --comment "sluice hook" -j SLUICE-FORWARD');
    expect(filter).toContain('-A INPUT -m comment --comment "sluice hook" -j SLUICE-INPUT');
    const nat = sh('ip6tables-save', '-t', 'nat');
    expect(nat).toContain('-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -m comment --comment "sluice hook" -j SLUICE-DNAT');
    expect(nat).toContain('-A POSTROUTING -m comment --comment "sluice hook" -j SLUICE-POSTROUTING');
    expect(sh('ip6tables-save').split('\n').filter((l) => l.includes('"sluice hook"'))).toHaveLength(6);
    // What the kernel prints for inet6 members: no /128, RFC 5952 text.
    expect(sh('ipset', 'save', 'sluice6it-nets').split('\n').filter((l) => l.startsWith('add')).sort()).toEqual(['add sluice6it-nets fd00:a::/64', 'add sluice6it-nets fd00:b::2']);
    expect(sh('ipset', 'list', '-t', 'sluice6it-nets')).toMatch(/family inet6/);
    expect(ipv4Text()).toBe(before);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
    // IPv4's firewall starting over from the kernel keeps IPv6's sets, which IPv6's rules use.
    await new LinuxDataplane().applyFirewall(v4);
    expect(sh('ipset', 'list', '-n')).toContain('sluice6it-peers');
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  it('drops ping6 by a rule (ICMPv6 type, /128 destination) or a set member, and lets it through again without them', async () => {
    expect(c1.canPing('fd00:b::2')).toBe(true);
    await dp.applyFirewallChange({ ...none, chains: [{ table: 'filter', chain: forward6(echoToC2) }] }, 6);
    expect(c1.canPing('fd00:b::2')).toBe(false);
    expect(c2.canPing('fd00:a::2')).toBe(true); // the other way: not an echo to c2
    expect(c1.canPing('fd00:b::3')).toBe(true); // c2's other address: the rule's is one address (/128)
    await dp.applyFirewallChange({ ...none, chains: [{ table: 'filter', chain: forward6() }] }, 6);
    expect(c1.canPing('fd00:b::2')).toBe(true);

    tap.calls.length = 0;
    await dp.applyFirewallChange({ ...none, members: [{ name: 'sluice6it-peers', add: ['fd00:b::2'], remove: [] }] }, 6);
    expect(tap.calls).toEqual([{ commandLine: 'ipset restore -exist', input: 'add sluice6it-peers fd00:b::2\n' }]);
    expect(c1.canPing('fd00:b::2')).toBe(false); // the reply comes from a member
    await dp.applyFirewallChange({ ...none, members: [{ name: 'sluice6it-peers', add: [], remove: ['fd00:b::2'] }] }, 6);
    expect(c1.canPing('fd00:b::2')).toBe(true);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });

  it('notices an IPv6 chain flushed out of band, refuses IPv6 changes until a full apply repairs it, IPv4 going on', async () => {
    await dp.applyFirewall({ ...v6, filter: [forward6(echoToC2), ...v6.filter.slice(1)] }, 6);
    expect(c1.canPing('fd00:b::2')).toBe(false);
    sh('ip6tables', '-F', 'SLUICE-FORWARD');
    expect(c1.canPing('fd00:b::2')).toBe(true);
    await expect(dp.verifyFirewall()).resolves.toEqual(['IPv6 filter chain SLUICE-FORWARD has 0 rules that differ from the 2 applied']);
    await expect(dp.applyFirewallChange(none, 6)).rejects.toThrow(/apply the full state/);
    await expect(dp.applyFirewallChange(none)).resolves.toBeUndefined();
    await dp.applyFirewall({ ...v6, filter: [forward6(echoToC2), ...v6.filter.slice(1)] }, 6);
    expect(c1.canPing('fd00:b::2')).toBe(false);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
    await dp.applyFirewall(v6, 6);
  });

  it('leaves ip6tables and ipset exactly as a full apply of the same IPv6 state does, step after step', async () => {
    const appnet: NetworkRecord = { key: 'fd00:96::-64', subnet: 'fd00:96::/64', blockSize: 122, gateway: 'fd00:96::1', name: 'appnet' };
    const dbnet: NetworkRecord = { key: 'fd00:97::-64', subnet: 'fd00:97::/64', blockSize: 122, gateway: 'fd00:97::1', name: 'dbnet', settings: { internal: true, auxAddresses: {} } };
    const record = (id: string, node: string, address: string, labels: Labels | null, ports: EndpointRecord['ports'] = []): EndpointRecord => ({
      id,
      network: address.startsWith('fd00:97:') ? dbnet.key : appnet.key,
      node,
      address,
      hostIfname: `slv${id.slice(0, 11)}`,
      labels,
      ports,
    });
    const endpoints = new Map<string, EndpointRecord>([
      ['h1/e1', record('e1e1e1e1e1e1e1e1', 'h1', 'fd00:96::5', { role: 'client' })],
      ['h1/e2', record('e2e2e2e2e2e2e2e2', 'h1', 'fd00:96::6', { role: 'web' })],
    ]);
    const policies = new Map<string, Policy>(
      parsePolicies("kind: NetworkPolicy\nname: web-from-client\nselector: role == 'web'\ningress: [{action: allow, protocol: tcp, from: role == 'client', ports: [80]}]\n").map((p) => [p.name, p]),
    );
    const networks = new Map([[appnet.key, appnet]]);
    const records: ClusterRecords = { networks, endpoints, policies };
    const incremental = new IncrementalFirewall('h1');
    incremental.update(records);
    await dp.applyFirewall(ipv6State(incremental.state()), 6);
    const v4Before = ipv4Text();
    const steps: [string, () => void][] = [
      ['a remote container starts', () => endpoints.set('h2/r1', record('a1a1a1a1a1a1a1a1', 'h2', 'fd00:96::1:7', { role: 'client' }))],
      ['a local container publishes a port', () => endpoints.set('h1/e2', { ...endpoints.get('h1/e2')!, ports: [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }] })],
      ['a remote container is relabelled', () => endpoints.set('h2/r1', { ...endpoints.get('h2/r1')!, labels: { role: 'web' } })],
      [
        'a policy with a new selector and CIDRs arrives',
        () => {
          const [p] = parsePolicies("kind: NetworkPolicy\nname: client-out\nselector: role == 'client'\negress: [{action: allow, to: role == 'web'}, {action: deny, toNets: ['2001:db8::/32']}]\n");
          policies.set(p!.name, p!);
        },
      ],
      ['an internal network comes', () => networks.set(dbnet.key, dbnet)],
      ['a local container joins it', () => endpoints.set('h1/d1', record('d1d1d1d1d1d1d1d1', 'h1', 'fd00:97::2', { role: 'db' }))],
      ['a policy goes', () => policies.delete('client-out')],
      ['the remote container stops', () => endpoints.delete('h2/r1')],
      [
        'the network goes',
        () => {
          endpoints.delete('h1/d1');
          networks.delete(dbnet.key);
        },
      ],
    ];
    for (const [what, step] of steps) {
      step();
      await dp.applyFirewallChange(ipv6Change(incremental.update(records)), 6);
      const changed = ipv6Text();
      // The reference: a dataplane that knows nothing reads the kernel and applies the full compile.
      const full = ipv6State(compileFirewall({ node: 'h1', networks: [...networks.values()], endpoints: [...endpoints.values()], policies: [...policies.values()] }));
      await new LinuxDataplane().applyFirewall(full, 6);
      expect(`${what}\n${changed}`).toBe(`${what}\n${ipv6Text()}`);
      await expect(dp.verifyFirewall()).resolves.toEqual([]);
      expect(`${what}\n${ipv4Text()}`).toBe(`${what}\n${v4Before}`);
    }
    expect(ipv6Text()).toContain('-j DNAT --to-destination [fd00:96::6]:80');
    // Positive control: a change the full state does not have is seen.
    await dp.applyFirewallChange({ ...none, members: [{ name: ipv6SetName(LOCAL_SET), add: ['fd00:96::9,slvfffffffffff'], remove: [] }] }, 6);
    const extra = ipv6Text();
    await new LinuxDataplane().applyFirewall(ipv6State(incremental.state()), 6);
    expect(ipv6Text()).not.toBe(extra);
  });

  it('removes every IPv6 set and leaves only its empty top-level chains and hooks for an empty state; IPv4 keeps its own', async () => {
    const v4Before = ipv4Text();
    await dp.applyFirewall({ ipsets: [], filter: [], nat: [] }, 6);
    expect(sh('ipset', 'list', '-n').split('\n').filter((n) => n.startsWith('sluice6'))).toEqual([]);
    const ours = (table: string) => sh('ip6tables-save', '-t', table).split('\n').filter((l) => l.includes('SLUICE-') && !l.includes('sluice hook'));
    expect(ours('filter')).toEqual([':SLUICE-FORWARD - [0:0]', ':SLUICE-INPUT - [0:0]']);
    expect(ours('nat')).toEqual([':SLUICE-DNAT - [0:0]', ':SLUICE-POSTROUTING - [0:0]']);
    expect(ipv4Text()).toBe(v4Before);
    await expect(dp.verifyFirewall()).resolves.toEqual([]);
  });
});
