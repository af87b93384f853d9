import type { FirewallState } from '../../../src/firewall/state';
import { normalizeFirewall } from '../../../src/firewall/state';
import { POSTROUTING_CHAIN } from '../../../src/firewall/names';
import { renderRule } from '../../../src/firewall/rule';
import { NO_HOOK_REPAIR, planFirewall, renderChains } from '../../../src/dataplane/linux/firewall-plan';
import type { EndpointRecord } from '../../../src/model';
import { compileFirewall, type CompileInput } from '../../../src/policy/compile';
import { IncrementalFirewall } from '../../../src/policy/incremental';
import { EGRESS_GOVERNED_SET, INGRESS_GOVERNED_SET, LOCAL_SET, netSetName, selectorSetName, targetSetName } from '../../../src/firewall/names';
import { parsePolicies } from '../../../src/policy-document/policy';
import { protection } from '../../../src/policy/protect';
import { renderForGolden } from '../../helpers/firewall-text';
import { expectGolden } from '../../helpers/golden';
import { FilterSim, type Packet, type Verdict } from '../../helpers/packet-sim';
import { CLIENT_EGRESS, CONTROL_PLANE, DNS_ADDRESS, WEB_FROM_CLIENT, appnet, client1, client2, db1, db2, dbnet, endpoint, fixtures, web1 } from './fixtures';

describe('compileFirewall golden output', () => {
  it.each(Object.keys(fixtures))('%s', (name) => {
    expectGolden(`compile-${name}.txt`, renderForGolden(compileFirewall(fixtures[name]!)));
  });

  it('does not depend on the order of its input', () => {
    for (const input of Object.values(fixtures)) {
      const reversed: CompileInput = {
        node: input.node,
        networks: [...input.networks].reverse(),
        endpoints: [...input.endpoints].reverse(),
        policies: [...input.policies].reverse(),
        protection: input.protection && { ...input.protection, destinations: [...input.protection.destinations].reverse() },
        dnsAddress: input.dnsAddress,
      };
      expect(compileFirewall(reversed)).toEqual(compileFirewall(input));
    }
  });
});

/** From a local container's veth, or from the underlay ('eth0') for remote and outside sources. */
function packet(from: EndpointRecord | string, to: EndpointRecord | string, extra: Partial<Packet> = {}): Packet {
  const side = (e: EndpointRecord | string, local: (e: EndpointRecord) => boolean): [string, string] =>
    typeof e === 'string' ? ['eth0', e] : [local(e) ? e.hostIfname : 'eth0', e.address];
  const isLocal = (e: EndpointRecord): boolean => e.node === 'h1';
  const [inIf, src] = side(from, isLocal);
  const [outIf, dst] = side(to, isLocal);
  return { inIf, outIf, src, dst, proto: 'tcp', dport: 80, ...extra };
}

function verdicts(state: FirewallState, cases: [string, Packet][]): Record<string, Verdict> {
  const sim = new FilterSim(state);
  return Object.fromEntries(cases.map(([label, p]) => [label, sim.forward(p)]));
}

describe('default policy (no policy selects the endpoint)', () => {
  const state = compileFirewall(fixtures['two-networks']!);
  const other = endpoint('other1', 'h1', appnet, '10.96.0.9', { role: 'x' });
  const withOther = compileFirewall({ ...fixtures['two-networks']!, endpoints: [web1, other, db1, db2] });

  it('allows the same network, refuses other sluice networks, allows the outside world', () => {
    expect(
      verdicts(withOther, [
        ['same network, same host', packet(other, web1)],
        ['other network, same host', packet(db1, web1)],
        ['other network, remote host', packet(db2, web1)],
        ['outside to container', packet('203.0.113.9', web1)],
        ['container to outside', packet(web1, '203.0.113.9')],
        ['container to other network (its egress allows, the receiver refuses)', packet(web1, db1)],
      ]),
    ).toEqual({
      'same network, same host': 'ACCEPT',
      'other network, same host': 'DROP',
      'other network, remote host': 'DROP',
      'outside to container': 'ACCEPT',
      'container to outside': 'ACCEPT',
      'container to other network (its egress allows, the receiver refuses)': 'DROP',
    });
  });

  it('drops spoofed sources and unknown sluice interfaces, passes replies, leaves other traffic alone', () => {
    expect(
      verdicts(state, [
        ['spoofed', { ...packet(web1, '203.0.113.9'), src: '10.96.0.99' }],
        ["spoofed as a local neighbour", { ...packet(web1, '203.0.113.9'), src: db1.address }],
        ["to a local endpoint through another's veth", { ...packet('203.0.113.9', web1), outIf: db1.hostIfname }],
        ['unknown veth in', { ...packet(web1, '203.0.113.9'), inIf: 'slvstale' }],
        ['unknown veth out', { ...packet('203.0.113.9', web1), outIf: 'slvstale' }],
        ['reply', packet(db2, web1, { ctstate: 'ESTABLISHED' })],
        ['invalid', packet(web1, '203.0.113.9', { ctstate: 'INVALID' })],
        ['not sluice', { ...packet('192.0.2.1', '203.0.113.9'), outIf: 'eth1' }],
      ]),
    ).toEqual({
      spoofed: 'DROP',
      'spoofed as a local neighbour': 'DROP',
      "to a local endpoint through another's veth": 'DROP',
      'unknown veth in': 'DROP',
      'unknown veth out': 'DROP',
      reply: 'ACCEPT',
      invalid: 'DROP',
      'not sluice': 'RETURN',
    });
  });
});

describe('CIDRs of both families in a policy', () => {
  it('gives the IPv4 firewall only the IPv4 CIDRs of a rule, and leaves out a rule whose CIDRs are all IPv6', () => {
    const [policy] = parsePolicies(`kind: NetworkPolicy
name: nets
selector: role == 'web'
ingress:
- {action: deny, fromNets: ["2001:db8::/32"]}
- {action: allow, fromNets: ["2001:db8::/32", 192.0.2.0/24]}
`);
    const state = compileFirewall({ ...fixtures['web-from-client']!, policies: [policy!] });
    expect(verdicts(state, [['from the IPv4 net', packet('192.0.2.7', web1)], ['from outside it', packet('198.51.100.1', web1)]])).toEqual({
      'from the IPv4 net': 'ACCEPT',
      'from outside it': 'DROP',
    });
    expect(state.ipsets.find((s) => s.name === netSetName(['192.0.2.0/24']))?.members).toEqual(['192.0.2.0/24']);
  });
});

describe('IPv6 firewall of a dual-stack network', () => {
  const dual = { ...appnet, settings: { internal: false, auxAddresses: {}, ipv6Subnet: 'fd00:96::/64' } };
  const v6 = (e: EndpointRecord, addressV6: string): EndpointRecord => ({ ...e, network: dual.key, addressV6 });
  const [web, client, remoteClient] = [v6(web1, 'fd00:96::2'), v6(client1, 'fd00:96::3'), v6(client2, 'fd00:96::42')];
  const ipv4Only = endpoint('old1', 'h1', appnet, '10.96.0.8', { role: 'client' });
  const input: CompileInput = { ...fixtures['web-from-client']!, networks: [dual], endpoints: [web, client, remoteClient, ipv4Only], family: 6 };
  const state = compileFirewall(input);
  const at6 = (e: EndpointRecord): EndpointRecord => ({ ...e, address: e.addressV6! });

  it('enforces the same policy at the IPv6 addresses, local and remote, and lets IPv4-only endpoints out of it', () => {
    expect(
      verdicts(state, [
        ['local client :80', packet(at6(client), at6(web))],
        ['remote client :80', packet(at6(remoteClient), at6(web))],
        ['client :22', packet(at6(client), at6(web), { dport: 22 })],
        ['outside :80', packet('2001:db8::9', at6(web))],
        ['spoofed: the client sending as the web container', packet({ ...at6(client), address: 'fd00:96::2' }, '2001:db8::9')],
      ]),
    ).toEqual({
      'local client :80': 'ACCEPT',
      'remote client :80': 'ACCEPT',
      'client :22': 'DROP',
      'outside :80': 'DROP',
      'spoofed: the client sending as the web container': 'DROP',
    });
    const local = state.ipsets.find((set) => set.name === LOCAL_SET)!;
    expect(local.members).toEqual([`fd00:96::3,${client.hostIfname}`, `fd00:96::2,${web.hostIfname}`].sort());
  });

  it('lets neighbour discovery reach the host before any policy, and nothing else ICMPv6 that policy refuses', () => {
    const lockdown = parsePolicies(`kind: NetworkPolicy
name: lockdown
selector: all()
egress: []
`);
    const sim = new FilterSim(compileFirewall({ ...input, policies: lockdown }));
    const toHost = (type: number): Packet => ({ ...packet(at6(web), 'fe80::1'), proto: 'icmp', dport: undefined, icmpType: type, outIf: '' });
    expect([135, 136].map((type) => sim.input(toHost(type)))).toEqual(['ACCEPT', 'ACCEPT']);
    expect(sim.input(toHost(128))).toBe('DROP');
    expect(new FilterSim(compileFirewall({ ...input, policies: [] })).input(toHost(128))).toBe('RETURN');
  });

  it('publishes -p on the host addresses of each family: every address on both, a given one on its own family', () => {
    const ports = [8080, 8081, 8082].map((hostPort, i) => ({ proto: 'tcp' as const, containerPort: 80, hostPort, hostPortEnd: 0, ...[{}, { hostIp: '192.0.2.5' }, { hostIp: '2001:db8::5' }][i] }));
    const published = (family: 4 | 6) =>
      compileFirewall({ ...input, endpoints: [{ ...web, ports }], family })
        .nat.find((c) => c.name === 'SLUICE-DNAT')!
        .rules.map((r) => [r.matches.find((m) => m.kind === 'destination-port'), r.action]);
    expect(published(6)).toEqual([
      [{ kind: 'destination-port', ports: { first: 8080, last: 8080 } }, { kind: 'DNAT', address: 'fd00:96::2', port: 80 }],
      [{ kind: 'destination-port', ports: { first: 8082, last: 8082 } }, { kind: 'DNAT', address: 'fd00:96::2', port: 80 }],
    ]);
    expect(published(4).map(([port]) => port)).toEqual([8080, 8081].map((p) => ({ kind: 'destination-port', ports: { first: p, last: p } })));
  });

  it('routes IPv6 out without masquerade, and has no IPv4 resolver rule', () => {
    const withDns = compileFirewall({ ...input, dnsAddress: DNS_ADDRESS });
    expect(withDns.nat.find((c) => c.name === POSTROUTING_CHAIN)!.rules.map((r) => r.action.kind)).not.toContain('MASQUERADE');
    expect(JSON.stringify(withDns.filter)).not.toContain(DNS_ADDRESS);
    expect(compileFirewall({ ...input, family: 4 }).nat.find((c) => c.name === POSTROUTING_CHAIN)!.rules.map((r) => r.action.kind)).toContain('MASQUERADE');
    // --ipv6-outbound masquerade: NAT66 as IPv4 has it, and the incremental firewall follows the setting.
    const nat66 = compileFirewall({ ...input, ipv6Masquerade: true }).nat.find((c) => c.name === POSTROUTING_CHAIN)!;
    expect(nat66.rules.map((r) => r.action.kind)).toContain('MASQUERADE');
    const incremental = new IncrementalFirewall('h1', 6);
    const records = { networks: new Map([[dual.key, dual]]), endpoints: new Map<string, EndpointRecord>(), policies: new Map() };
    incremental.update(records);
    expect(incremental.update({ ...records, ipv6Masquerade: true }).chains).toEqual([{ table: 'nat', chain: nat66 }]);
  });
});

describe('ingress policy', () => {
  const state = compileFirewall(fixtures['web-from-client']!);

  it('allows only what a rule matches, from local and remote sources', () => {
    expect(
      verdicts(state, [
        ['local client :80', packet(client1, web1)],
        ['remote client :80', packet(client2, web1)],
        ['client in range', packet(client1, web1, { dport: 8050 })],
        ['client range end', packet(client1, web1, { dport: 8100 })],
        ['client outside range', packet(client1, web1, { dport: 8101 })],
        ['client udp :80', packet(client1, web1, { proto: 'udp' })],
        ['other network :80', packet(db1, web1)],
        ['outside :80', packet('198.51.100.1', web1)],
        ['fromNets :443', packet('192.0.2.7', web1, { dport: 443 })],
        ['fromNets :80', packet('192.0.2.7', web1)],
        ['icmp from anywhere', packet('198.51.100.1', web1, { proto: 'icmp', dport: undefined })],
        ['client, not selected, keeps the default', packet(web1, client1, { dport: 22 })],
      ]),
    ).toEqual({
      'local client :80': 'ACCEPT',
      'remote client :80': 'ACCEPT',
      'client in range': 'ACCEPT',
      'client range end': 'ACCEPT',
      'client outside range': 'DROP',
      'client udp :80': 'DROP',
      'other network :80': 'DROP',
      'outside :80': 'DROP',
      'fromNets :443': 'ACCEPT',
      'fromNets :80': 'DROP',
      'icmp from anywhere': 'ACCEPT',
      'client, not selected, keeps the default': 'ACCEPT',
    });
  });

  it('puts matching endpoints of every host in the selector set, never those with unknown labels', () => {
    const input = fixtures['web-from-client']!;
    const unknown = endpoint('new9', 'h2', appnet, '10.96.0.70', null);
    const { ipsets } = compileFirewall({ ...input, endpoints: [...input.endpoints, unknown] });
    const clients = ipsets.find((s) => s.name === selectorSetName("role == 'client'"));
    expect(clients).toEqual({ name: selectorSetName("role == 'client'"), type: 'hash:ip', members: ['10.96.0.3', '10.96.0.66'] });
  });

  it('applies a policy with network: only to endpoints of that network', () => {
    const webOnDbnet = endpoint('web9', 'h1', dbnet, '10.97.0.9', { role: 'web' });
    const sim = new FilterSim(compileFirewall({ ...fixtures['web-from-client']!, endpoints: [web1, webOnDbnet, db1] }));
    expect(sim.forward(packet(db1, webOnDbnet, { dport: 22 }))).toBe('ACCEPT');
    expect(sim.forward(packet(db1, web1, { dport: 22 }))).toBe('DROP');
  });

  it('denies all ingress with an empty rule list, and lets the first matching rule across policies decide', () => {
    const policies = parsePolicies(`
kind: NetworkPolicy
name: lockdown
selector: all()
order: 500
ingress: []
---
kind: NetworkPolicy
name: deny-ssh
selector: role == 'web'
order: 1
ingress: [{action: deny, protocol: tcp, ports: [22]}]
---
kind: NetworkPolicy
name: allow-all-to-web
selector: role == 'web'
order: 2
ingress: [{action: allow}]
`);
    const sim = new FilterSim(compileFirewall({ node: 'h1', networks: [appnet], endpoints: [web1, client1], policies }));
    expect(sim.forward(packet(client1, web1, { dport: 22 }))).toBe('DROP');
    expect(sim.forward(packet(client1, web1, { dport: 80 }))).toBe('ACCEPT');
    expect(sim.forward(packet(web1, client1, { dport: 80 }))).toBe('DROP');
  });
});

describe('two local containers', () => {
  it('checks the receiver even after the sender\'s egress policy allowed the packet', () => {
    const policies = parsePolicies(`
kind: NetworkPolicy
name: client-out
selector: role == 'client'
egress: [{action: allow}]
---
kind: NetworkPolicy
name: web-closed
selector: role == 'web'
ingress: []
`);
    const sim = new FilterSim(compileFirewall({ node: 'h1', networks: [appnet], endpoints: [web1, client1], policies }));
    expect(sim.forward(packet(client1, '203.0.113.9'))).toBe('ACCEPT');
    expect(sim.forward(packet(client1, web1))).toBe('DROP');
  });
});

describe('egress policy', () => {
  const state = compileFirewall(fixtures['egress-rules']!);

  it('takes policies in order and rules in order, first match wins, default deny', () => {
    expect(
      verdicts(state, [
        ['to db :5432 (denied first)', packet(client1, db2, { dport: 5432 })],
        ['to db :80 (allowed by 0.0.0.0/0)', packet(client1, db2, { dport: 80 })],
        ['to outside', packet(client1, '203.0.113.5', { proto: 'udp', dport: 53 })],
        ['db egress untouched', packet(db1, '203.0.113.5')],
      ]),
    ).toEqual({
      'to db :5432 (denied first)': 'DROP',
      'to db :80 (allowed by 0.0.0.0/0)': 'ACCEPT',
      'to outside': 'ACCEPT',
      'db egress untouched': 'ACCEPT',
    });
  });

  it('matches 0.0.0.0/0 without a set (hash:net cannot hold /0) and shares net sets with networks', () => {
    expect(state.ipsets.map((s) => s.name)).not.toContain(netSetName(['0.0.0.0/0']));
    const dns = state.ipsets.find((s) => s.name === netSetName(['198.51.100.53/32', '10.97.0.0/16']));
    expect(dns?.members).toEqual(['10.97.0.0/16', '198.51.100.53/32']);
  });

  it('allows only what its rules allow once a policy selects it', () => {
    const [, dnsOnly] = parsePolicies(CLIENT_EGRESS);
    const sim = new FilterSim(compileFirewall({ ...fixtures['egress-rules']!, policies: [dnsOnly!] }));
    expect(sim.forward(packet(client1, '198.51.100.53', { proto: 'udp', dport: 53 }))).toBe('ACCEPT');
    expect(sim.forward(packet(client1, '198.51.100.54', { proto: 'udp', dport: 53 }))).toBe('DROP');
    expect(sim.forward(packet(client1, db2, { proto: 'udp', dport: 53 }))).toBe('ACCEPT');
    expect(sim.forward(packet(client1, db2, { proto: 'tcp', dport: 53 }))).toBe('DROP');
  });
});

describe('fail closed', () => {
  const state = compileFirewall(fixtures['fail-closed']!);
  const unlabelled = endpoint('new1', 'h1', appnet, '10.96.0.4', null);
  const orphan = endpoint('orphan1', 'h1', dbnet, '10.97.0.9', { role: 'web' });

  it('drops everything to and from an endpoint with unknown labels or network', () => {
    expect(
      verdicts(state, [
        ['unlabelled out', packet(unlabelled, '203.0.113.9')],
        ['unlabelled in (same network)', packet(client2, unlabelled)],
        ['unlabelled reply', packet(unlabelled, '203.0.113.9', { ctstate: 'ESTABLISHED' })],
        ['orphan out', packet(orphan, '203.0.113.9')],
        ['orphan in', packet('203.0.113.9', orphan)],
      ]),
    ).toEqual({
      'unlabelled out': 'DROP',
      'unlabelled in (same network)': 'DROP',
      // Conntrack comes first; an endpoint never had a connection allowed before its labels were known.
      'unlabelled reply': 'ACCEPT',
      'orphan out': 'DROP',
      'orphan in': 'DROP',
    });
  });

  it('leaves them out of the local set and of every policy target set, so no rule lets them pass', () => {
    const members = (name: string) => state.ipsets.find((s) => s.name === name)?.members;
    expect(members(LOCAL_SET)).toEqual(['10.96.0.2,slvweb1']);
    expect(members(targetSetName("role == 'web'", 'appnet'))).toEqual(['10.96.0.2']);
    expect(members(INGRESS_GOVERNED_SET)).toEqual(['10.96.0.2']);
  });

  it('keeps them from the host too, except for replies', () => {
    const sim = new FilterSim(state);
    expect(sim.input(packet(unlabelled, appnet.gateway))).toBe('DROP');
    expect(sim.input(packet(orphan, dbnet.gateway))).toBe('DROP');
    expect(sim.input(packet(unlabelled, appnet.gateway, { ctstate: 'ESTABLISHED' }))).toBe('RETURN');
    expect(sim.input(packet(web1, appnet.gateway))).toBe('RETURN');
  });

  it('keeps endpoints with unknown labels out of every selector set', () => {
    const allSet = compileFirewall({
      ...fixtures['fail-closed']!,
      policies: parsePolicies('{kind: NetworkPolicy, name: p, selector: all(), ingress: [{action: allow, from: all()}]}'),
    }).ipsets.find((s) => s.name === selectorSetName('all()'));
    expect(allSet?.members).toEqual(['10.96.0.2', '10.97.0.9']);
  });
});

describe('traffic to the host itself', () => {
  const [lockdown] = parsePolicies(`
kind: NetworkPolicy
name: client-no-egress
selector: role == 'client'
egress: []
`);
  const sim = new FilterSim(compileFirewall({ node: 'h1', networks: [appnet], endpoints: [web1, client1, client2], policies: [lockdown!] }));

  it('passes as egress of the container allows, leaving the verdict on what passes to the host rules', () => {
    expect({
      'allowed container': sim.input(packet(web1, appnet.gateway)),
      'egress-denied container': sim.input(packet(client1, appnet.gateway)),
      'egress-denied container, reply': sim.input(packet(client1, appnet.gateway, { ctstate: 'ESTABLISHED' })),
      spoofed: sim.input({ ...packet(web1, appnet.gateway), src: client1.address }),
      'unknown veth': sim.input({ ...packet(web1, appnet.gateway), inIf: 'slvstale' }),
      'not from a container': sim.input(packet('192.0.2.1', '192.0.2.2')),
      'remote container': sim.input(packet(client2, '192.0.2.2')),
    }).toEqual({
      'allowed container': 'RETURN',
      'egress-denied container': 'DROP',
      'egress-denied container, reply': 'RETURN',
      spoofed: 'DROP',
      'unknown veth': 'DROP',
      'not from a container': 'RETURN',
      'remote container': 'RETURN',
    });
  });
});

describe('the control plane', () => {
  const state = compileFirewall(fixtures['control-plane']!);
  const [openStore] = parsePolicies(`
kind: NetworkPolicy
name: open-the-store
selector: all()
order: 1
egress: [{action: allow, protocol: tcp, toNets: [192.0.2.0/24], ports: [2375, 2379]}]
`);

  it('is closed to containers even when their egress policy allows everything, the rest of the same hosts open', () => {
    expect(
      verdicts(state, [
        ['etcd', packet(web1, '192.0.2.100', { dport: 2379 })],
        ['etcd host, another port', packet(web1, '192.0.2.100', { dport: 80 })],
        ['etcd host, udp on the store port', packet(web1, '192.0.2.100', { proto: 'udp', dport: 2379 })],
        ['etcd on a node', packet(web1, '192.0.2.2', { dport: 2379 })],
        ['docker API of a node', packet(web1, '192.0.2.2', { dport: 2375 })],
        ['docker TLS API of a node', packet(web1, '192.0.2.2', { dport: 2376 })],
        ['a node, another port', packet(web1, '192.0.2.2', { dport: 22 })],
        ['docker port elsewhere', packet(web1, '203.0.113.9', { dport: 2375 })],
        ['--protect address, any port', packet(web1, '198.51.100.7', { dport: 443 })],
        ['--protect address, icmp', packet(web1, '198.51.100.7', { proto: 'icmp', dport: undefined })],
        ['--protect address:port', packet(web1, '198.51.100.8', { dport: 8500 })],
        ['--protect address, another port', packet(web1, '198.51.100.8', { dport: 8501 })],
        ['reply to a protected address', packet(web1, '198.51.100.7', { ctstate: 'ESTABLISHED' })],
        ['remote container to etcd (its own host drops it)', { ...packet(client2, '192.0.2.100', { dport: 2379 }), outIf: 'eth1' }],
      ]),
    ).toEqual({
      etcd: 'DROP',
      'etcd host, another port': 'ACCEPT',
      'etcd host, udp on the store port': 'ACCEPT',
      'etcd on a node': 'DROP',
      'docker API of a node': 'DROP',
      'docker TLS API of a node': 'DROP',
      'a node, another port': 'ACCEPT',
      'docker port elsewhere': 'ACCEPT',
      '--protect address, any port': 'DROP',
      '--protect address, icmp': 'DROP',
      '--protect address:port': 'DROP',
      '--protect address, another port': 'ACCEPT',
      'reply to a protected address': 'ACCEPT',
      'remote container to etcd (its own host drops it)': 'RETURN',
    });
  });

  it('cannot be opened by a policy that allows it by name', () => {
    const sim = new FilterSim(compileFirewall({ ...fixtures['control-plane']!, policies: [openStore!] }));
    expect(sim.forward(packet(web1, '192.0.2.100', { dport: 2379 }))).toBe('DROP');
    expect(sim.forward(packet(web1, '192.0.2.2', { dport: 2375 }))).toBe('DROP');
    expect(sim.input(packet(web1, '192.0.2.1', { dport: 2375 }))).toBe('DROP');
    const unprotected = new FilterSim(compileFirewall({ ...fixtures['control-plane']!, policies: [openStore!], protection: undefined }));
    expect(unprotected.forward(packet(web1, '192.0.2.100', { dport: 2379 }))).toBe('ACCEPT');
  });

  it('is closed on every address of this host, its other services left to the host rules', () => {
    const sim = new FilterSim(state);
    expect({
      'docker API, node address': sim.input(packet(web1, '192.0.2.1', { dport: 2375 })),
      'docker API, gateway': sim.input(packet(web1, appnet.gateway, { dport: 2376 })),
      'store port, gateway': sim.input(packet(web1, appnet.gateway, { dport: 2379 })),
      'dns, gateway': sim.input(packet(web1, appnet.gateway, { proto: 'udp', dport: 53 })),
      'http, node address': sim.input(packet(web1, '192.0.2.1', { dport: 80 })),
      'reply from the docker port': sim.input(packet(web1, '192.0.2.1', { dport: 2375, ctstate: 'ESTABLISHED' })),
      'not from a container': sim.input(packet('192.0.2.2', '192.0.2.1', { dport: 2375 })),
    }).toEqual({
      'docker API, node address': 'DROP',
      'docker API, gateway': 'DROP',
      'store port, gateway': 'DROP',
      'dns, gateway': 'RETURN',
      'http, node address': 'RETURN',
      'reply from the docker port': 'RETURN',
      'not from a container': 'RETURN',
    });
  });

  it('changes sets only when nodes join or leave', () => {
    const before = compileFirewall(fixtures['control-plane']!);
    const after = compileFirewall({ ...fixtures['control-plane']!, protection: protection(CONTROL_PLANE, ['192.0.2.1', '192.0.2.2', '192.0.2.3'], '192.0.2.1') });
    expect(after.filter).toEqual(before.filter);
    expect(after.ipsets).not.toEqual(before.ipsets);
    expect(new FilterSim(after).forward(packet(web1, '192.0.2.3', { dport: 2375 }))).toBe('DROP');
  });
});

describe('DNS to the sluice resolver', () => {
  const input = fixtures['dns-under-egress-deny']!;

  it('is allowed under an egress default deny, over udp and tcp, and nothing else of the host or beyond is', () => {
    const sim = new FilterSim(compileFirewall(input));
    expect({
      'dns udp': sim.input(packet(client1, DNS_ADDRESS, { proto: 'udp', dport: 53 })),
      'dns tcp': sim.input(packet(client1, DNS_ADDRESS, { proto: 'tcp', dport: 53 })),
      'resolver address, another port': sim.input(packet(client1, DNS_ADDRESS, { proto: 'tcp', dport: 80 })),
      'dns on the gateway': sim.input(packet(client1, appnet.gateway, { proto: 'udp', dport: 53 })),
      'dns elsewhere': sim.forward(packet(client1, '198.51.100.53', { proto: 'udp', dport: 53 })),
      'web, same network': sim.forward(packet(client1, web1)),
      'an unselected container, dns': sim.input(packet(web1, DNS_ADDRESS, { proto: 'udp', dport: 53 })),
    }).toEqual({
      'dns udp': 'ACCEPT',
      'dns tcp': 'ACCEPT',
      'resolver address, another port': 'DROP',
      'dns on the gateway': 'DROP',
      'dns elsewhere': 'DROP',
      'web, same network': 'DROP',
      'an unselected container, dns': 'ACCEPT',
    });
  });

  it('is left to policy when no resolver serves', () => {
    const sim = new FilterSim(compileFirewall({ ...input, dnsAddress: undefined }));
    expect(sim.input(packet(client1, DNS_ADDRESS, { proto: 'udp', dport: 53 }))).toBe('DROP');
  });
});

describe('egress policy order', () => {
  it('lets the policy with the lower order decide, whichever way', () => {
    const state = (denyOrder: number) =>
      compileFirewall({
        node: 'h1',
        networks: [appnet],
        endpoints: [web1, client1],
        policies: parsePolicies(`
kind: NetworkPolicy
name: deny-web
selector: role == 'client'
order: ${denyOrder}
egress: [{action: deny, to: role == 'web'}]
---
kind: NetworkPolicy
name: allow-all
selector: all()
order: 50
egress: [{action: allow}]
`),
      });
    expect(new FilterSim(state(10)).forward(packet(client1, web1))).toBe('DROP');
    expect(new FilterSim(state(90)).forward(packet(client1, web1))).toBe('ACCEPT');
    // The deny applies to clients only; web's egress is decided by allow-all.
    expect(new FilterSim(state(10)).forward(packet(web1, client1))).toBe('ACCEPT');
  });
});

describe('endpoint churn', () => {
  const base: CompileInput = {
    ...fixtures['web-from-client']!,
    policies: [...fixtures['web-from-client']!.policies, ...parsePolicies(CLIENT_EGRESS)],
  };
  const web2 = endpoint('web2', 'h1', appnet, '10.96.0.4', { role: 'web' });
  const withClient1 = (labels: EndpointRecord['labels']): CompileInput => ({
    ...base,
    endpoints: [...base.endpoints.filter((e) => e !== client1), { ...client1, labels }],
  });
  // Each from base to the other state and back.
  const changes: [string, CompileInput][] = [
    ['a local endpoint added or removed', { ...base, endpoints: [...base.endpoints, web2] }],
    ['a remote endpoint added or removed', { ...base, endpoints: [...base.endpoints, endpoint('client3', 'h2', appnet, '10.96.0.67', { role: 'client' })] }],
    ['labels learned or lost', withClient1(null)],
    ['labels changed', withClient1({ role: 'web' })],
  ];

  it.each(changes)('%s: changes set members only, so the dataplane runs no iptables-restore', (_what, other) => {
    for (const [from, to] of [[base, other], [other, base]] as const) {
      const before = compileFirewall(from);
      const after = compileFirewall(to);
      expect(after.filter).toEqual(before.filter);
      expect(after.nat).toEqual(before.nat);
      expect(after.ipsets.map((s) => s.name)).toEqual(before.ipsets.map((s) => s.name));
      expect(after.ipsets).not.toEqual(before.ipsets);
      const current = normalizeFirewall(before);
      const chains = { filter: renderChains(current.chains.filter), nat: renderChains(current.chains.nat) };
      const plan = planFirewall({ sets: current.sets, chains, hooks: NO_HOOK_REPAIR }, normalizeFirewall(after));
      expect(plan.iptables).toEqual([]);
      expect(plan.ipsetBefore.length + plan.ipsetAfter.length).toBeGreaterThan(0);
    }
  });

  it('keeps the governed sets the union of what the policies select', () => {
    const { ipsets } = compileFirewall({ ...base, endpoints: [...base.endpoints, web2] });
    const members = (name: string) => ipsets.find((s) => s.name === name)?.members;
    expect(members(INGRESS_GOVERNED_SET)).toEqual(['10.96.0.2', '10.96.0.4']);
    expect(members(EGRESS_GOVERNED_SET)).toEqual(['10.96.0.3']);
    expect(members(LOCAL_SET)).toEqual(['10.96.0.2,slvweb1', '10.96.0.3,slvclient1', '10.96.0.4,slvweb2', '10.97.0.2,slvdb1']);
  });

  it('rewrites chains for what is not endpoint churn: a policy, a network, a port mapping', () => {
    const chains = (input: CompileInput) => {
      const { filter, nat } = compileFirewall(input);
      return { filter, nat };
    };
    const published = { ...web2, ports: [{ proto: 'tcp' as const, containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }] };
    expect(chains({ ...base, policies: base.policies.slice(1) })).not.toEqual(chains(base));
    expect(chains({ ...base, networks: [appnet] })).not.toEqual(chains(base));
    expect(chains({ ...base, endpoints: [...base.endpoints, published] })).not.toEqual(chains(base));
  });
});

describe('--internal networks', () => {
  const internalNet = { ...appnet, settings: { internal: true, auxAddresses: {} } };
  const local = endpoint('int1', 'h1', internalNet, '10.96.0.2', { role: 'web' });
  const remote = endpoint('int2', 'h2', internalNet, '10.96.0.66', { role: 'web' });
  const input = (network: typeof appnet) => ({ node: 'h1', networks: [network, dbnet], endpoints: [{ ...local, network: network.key }, remote], policies: [] });

  it('lets its containers reach each other across hosts and nothing outside the sluice networks, replies included', () => {
    expect(
      verdicts(compileFirewall(input(internalNet)), [
        ['to the same network on another host', packet(local, remote)],
        ['from the same network on another host', packet(remote, local)],
        ['to outside', packet(local, '192.0.2.50')],
        ['from outside', packet('192.0.2.50', local)],
        ['a reply from outside', { ...packet('192.0.2.50', local), ctstate: 'ESTABLISHED' }],
      ]),
    ).toEqual({
      'to the same network on another host': 'ACCEPT',
      'from the same network on another host': 'ACCEPT',
      'to outside': 'DROP',
      'from outside': 'DROP',
      'a reply from outside': 'DROP',
    });
  });

  it('is not masqueraded; a network without --internal still is and still reaches outside (positive control)', () => {
    const nat = (state: FirewallState) => state.nat.find((c) => c.name === POSTROUTING_CHAIN)!.rules;
    const internal = nat(compileFirewall(input(internalNet)));
    expect(internal[0]).toMatchObject({ comment: 'sluice: internal networks have no way out', action: { kind: 'RETURN' } });
    expect(internal[1]?.action).toEqual({ kind: 'MASQUERADE' });
    const normal = compileFirewall(input(appnet));
    expect(nat(normal)).toHaveLength(1);
    expect(verdicts(normal, [['to outside', packet({ ...local, network: appnet.key }, '192.0.2.50')]])).toEqual({ 'to outside': 'ACCEPT' });
  });
});

describe('port mappings', () => {
  it('maps tcp and udp host ports (and ranges) of local endpoints only', () => {
    const dnat = compileFirewall(fixtures['port-mappings']!).nat.find((c) => c.name === 'SLUICE-DNAT');
    expect(dnat?.rules.map((rule) => renderRule(rule))).toEqual([
      '-m comment --comment "sluice: publish web1" -p tcp --dport 8080 -j DNAT --to-destination 10.96.0.2:80',
      '-m comment --comment "sluice: publish web1" -p tcp --dport 9000:9010 -j DNAT --to-destination 10.96.0.2:9000',
      '-m comment --comment "sluice: publish web1" -p udp -d 192.0.2.10/32 --dport 5353 -j DNAT --to-destination 10.96.0.2:53',
    ]);
  });
});

describe('multiport limits', () => {
  it('splits more than 15 port slots over several rules', () => {
    const ports = Array.from({ length: 14 }, (_, i) => 1000 + i).join(', ');
    const [policy] = parsePolicies(`
kind: NetworkPolicy
name: many-ports
selector: role == 'web'
ingress: [{action: allow, protocol: tcp, ports: [${ports}, "2000-2010", 3000]}]
`);
    const state = compileFirewall({ node: 'h1', networks: [appnet], endpoints: [web1], policies: [policy!] });
    const chain = state.filter.find((c) => c.name.startsWith('SLUICE-pi-'));
    const lists = chain?.rules.flatMap((r) => r.matches.flatMap((m) => (m.kind === 'multiport' ? [m.ports.map((p) => (p.first === p.last ? p.first : `${p.first}-${p.last}`)).join(',')] : [])));
    expect(lists).toEqual([`${ports.replace(/ /g, '')}`, '2000-2010,3000']);
    const sim = new FilterSim(state);
    for (const dport of [1000, 1013, 2005, 3000]) expect(sim.forward(packet('198.51.100.1', web1, { dport }))).toBe('ACCEPT');
    expect(sim.forward(packet('198.51.100.1', web1, { dport: 1014 }))).toBe('DROP');
  });
});

describe('compiler input it cannot trust', () => {
  it('names the policy whose stored selector does not parse', () => {
    const [policy] = parsePolicies(WEB_FROM_CLIENT);
    expect(() => compileFirewall({ ...fixtures['no-policies']!, policies: [{ ...policy!, selector: 'role ==' }] })).toThrow(
      'policy web-from-client: selector "role ==": at column 8: expected a quoted string',
    );
  });
});
