import { ConflictError, DataplaneError } from '../../../src/errors';
import { vethTaken } from '../../../src/dataplane/checks';
import type { Rule } from '../../../src/firewall/rule';
import type { FirewallChange, FirewallState } from '../../../src/firewall/state';
import { LinuxDataplane } from '../../../src/dataplane/linux/linux-dataplane';
import { endpointIfnames, vxlanMac } from '../../../src/firewall/names';
import { ScriptedRunner, type Script } from './scripted-runner';

function dataplane(script: Script) {
  const runner = new ScriptedRunner(script);
  const sysctls: string[] = [];
  const dp = new LinuxDataplane(runner, (key, value) => {
    sysctls.push(`${key}=${value}`);
    return Promise.resolve();
  });
  return { dp, runner, sysctls };
}

/** iptables-save of a host Sluice has hooked. */
const hooked = {
  filter:
    '*filter\n:SLUICE-FORWARD - [0:0]\n:SLUICE-INPUT - [0:0]\n' +
    '-A INPUT -m comment --comment "sluice hook" -j SLUICE-INPUT\n' +
    '-A FORWARD -o sluice.vxlan -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "sluice hook" -j TCPMSS --clamp-mss-to-pmtu\n' +
    '-A FORWARD -i slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established from workload" -j ACCEPT\n' +
    '-A FORWARD -o slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established to workload" -j ACCEPT\n' +
    '-A FORWARD -m comment --comment "sluice hook" -j SLUICE-FORWARD\nCOMMIT\n',
  nat:
    '*nat\n:SLUICE-DNAT - [0:0]\n:SLUICE-POSTROUTING - [0:0]\n' +
    '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "sluice hook" -j SLUICE-DNAT\n' +
    '-A OUTPUT -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -m comment --comment "sluice hook" -j SLUICE-DNAT\n' +
    '-A POSTROUTING -m comment --comment "sluice hook" -j SLUICE-POSTROUTING\nCOMMIT\n',
};

const names = endpointIfnames('0123456789abcdef0123');
const link = { ...names, address: '10.96.0.5', mac: '02:73:0a:60:00:05', mtu: 1450 };

describe('endpoints', () => {
  it('adds an endpoint with one process: link, up, MTU and route in one batch; proxy ARP by sysctl', async () => {
    const { dp, runner, sysctls } = dataplane(() => '');
    await dp.addEndpoint(link);
    expect(runner.calls).toEqual([
      {
        command: 'ip',
        args: ['-batch', '-'],
        input:
          'link add slv0123456789a mtu 1450 type veth peer name sc0123456789a mtu 1450 address 02:73:0a:60:00:05\n' +
          'link set slv0123456789a mtu 1450 up\n' +
          'route replace 10.96.0.5/32 dev slv0123456789a scope link proto 252\n' +
          'neigh replace 10.96.0.5 lladdr 02:73:0a:60:00:05 dev slv0123456789a nud permanent\n',
      },
    ]);
    expect(sysctls).toEqual(['net/ipv4/conf/slv0123456789a/proxy_arp=1', 'net/ipv4/neigh/slv0123456789a/proxy_delay=0']);
  });

  it('plumbs a dual-stack endpoint in the same batch: /128 route, neighbour, proxy NDP for the gateway; IPv6 forwarding once', async () => {
    const { dp, runner, sysctls } = dataplane(() => '');
    await dp.addEndpoint({ ...link, addressV6: 'fd00:96::5', gatewayV6: 'fd00:96::1' });
    expect(runner.calls[0]?.input).toBe(
      'link add slv0123456789a mtu 1450 type veth peer name sc0123456789a mtu 1450 address 02:73:0a:60:00:05\n' +
        'link set slv0123456789a mtu 1450 up\n' +
        'route replace 10.96.0.5/32 dev slv0123456789a scope link proto 252\n' +
        'neigh replace 10.96.0.5 lladdr 02:73:0a:60:00:05 dev slv0123456789a nud permanent\n' +
        'route replace fd00:96::5/128 dev slv0123456789a proto 252\n' +
        'neigh replace fd00:96::5 lladdr 02:73:0a:60:00:05 dev slv0123456789a nud permanent\n' +
        'neigh replace proxy fd00:96::1 dev slv0123456789a\n',
    );
    expect(sysctls).toEqual([
      'net/ipv6/conf/all/forwarding=1',
      'net/ipv4/conf/slv0123456789a/proxy_arp=1',
      'net/ipv4/neigh/slv0123456789a/proxy_delay=0',
      'net/ipv6/conf/slv0123456789a/proxy_ndp=1',
      'net/ipv6/neigh/slv0123456789a/proxy_delay=0',
      'net/ipv6/conf/slv0123456789a/accept_ra=0',
    ]);
    sysctls.length = 0;
    const other = endpointIfnames('fedcba9876543210');
    await dp.addEndpoint({ ...link, ...other, addressV6: 'fd00:96::6', gatewayV6: 'fd00:96::1' });
    expect(sysctls.filter((s) => s.includes('forwarding'))).toEqual([]);
  });

  it('leaves IPv6 forwarding alone for an IPv4-only endpoint', async () => {
    const { dp, sysctls } = dataplane(() => '');
    await dp.init();
    await dp.addEndpoint(link);
    expect(sysctls.filter((s) => s.startsWith('net/ipv6/'))).toEqual([]);
  });

  it.each([
    ['an IPv6 address without its gateway', { addressV6: 'fd00:96::5' }, /needs its network's IPv6 gateway/],
    ['a gateway without an address', { gatewayV6: 'fd00:96::1' }, /needs its network's IPv6 gateway/],
    ['an IPv4 address as IPv6 address', { addressV6: '10.96.0.5', gatewayV6: 'fd00:96::1' }, /"10.96.0.5" is not an IPv6 address/],
    ['a prefix on the address', { addressV6: 'fd00:96::5/64', gatewayV6: 'fd00:96::1' }, /"fd00:96::5\/64" is not an IPv6 address/],
  ])('refuses %s before starting any process or writing any sysctl', async (_what, bad, message) => {
    const { dp, runner, sysctls } = dataplane(() => '');
    await expect(dp.addEndpoint({ ...link, ...bad })).rejects.toThrow(message);
    expect(runner.calls).toEqual([]);
    expect(sysctls).toEqual([]);
  });

  it('refuses a veth name in use, touching nothing of the link that has it', async () => {
    const { dp, runner, sysctls } = dataplane((call) =>
      call.input?.startsWith('link add') ? { fail: 'RTNETLINK answers: File exists\nCommand failed -:1' } : '',
    );
    await expect(dp.addEndpoint(link)).rejects.toThrow(new ConflictError(vethTaken('slv0123456789a').message));
    expect(runner.calls.map((c) => c.input)).toEqual([expect.stringMatching(/^link add /)]);
    expect(sysctls).toEqual([]);
  });

  it('fails on any other error, naming the failing line', async () => {
    const { dp, sysctls } = dataplane(() => ({ fail: 'Error: inet prefix is expected rather than "10.96.0.5/32".\nCommand failed -:3' }));
    await expect(dp.addEndpoint(link)).rejects.toThrow(/input line 3: route replace 10.96.0.5\/32/);
    expect(sysctls).toEqual([]);
  });

  it('refuses a host-side name it would never list again', async () => {
    const { dp, runner } = dataplane(() => '');
    await expect(dp.addEndpoint({ ...link, hostIfname: 'eth1' })).rejects.toThrow(DataplaneError);
    expect(runner.calls).toEqual([]);
  });

  it.each([
    ['a MAC', { mac: '02:73:0a:60:00:05\nlink del sluice0' }],
    ['an address', { address: '10.96.0.5 dev eth0' }],
    ['an interface name', { containerIfname: 'sc"x' }],
  ])('starts no process for %s that would split a command, even if validation was bypassed', async (_what, bad) => {
    const { dp, runner } = dataplane(() => '');
    await expect(dp.addEndpoint({ ...link, ...bad })).rejects.toThrow(/refusing argument .* in batch input/);
    expect(runner.calls).toEqual([]);
  });

  it('refuses to delete an interface that is not a Sluice veth', async () => {
    const { dp, runner } = dataplane(() => '');
    await expect(dp.removeEndpoint('eth0')).rejects.toThrow(/not a Sluice interface/);
    expect(runner.calls).toEqual([]);
  });

  it('removes an endpoint; an absent one is fine, other failures are not', async () => {
    const absent = dataplane(() => ({ fail: 'Cannot find device "slv0123456789a"' }));
    await absent.dp.removeEndpoint('slv0123456789a');
    expect(absent.runner.commandLines).toEqual(['ip link del dev slv0123456789a']);
    const busy = dataplane(() => ({ fail: 'RTNETLINK answers: Operation not permitted' }));
    await expect(busy.dp.removeEndpoint('slv0123456789a')).rejects.toThrow(/Operation not permitted/);
  });

  it('lists only Sluice host-side veths', async () => {
    const { dp } = dataplane(() =>
      JSON.stringify([{ ifname: 'slv0123456789a', link: 'sc0123456789a' }, { ifname: 'sc0123456789a' }, { ifname: 'vethab12' }]),
    );
    await expect(dp.listEndpoints()).resolves.toEqual(['slv0123456789a']);
  });
});

describe('init and gateways', () => {
  it('enables forwarding, creates the gateway device and leaves present hooks alone', async () => {
    const save = (table: string) =>
      table === 'filter'
        ? '*filter\n:FORWARD ACCEPT [0:0]\n:SLUICE-FORWARD - [0:0]\n:SLUICE-INPUT - [0:0]\n' +
          hooked.filter.slice(hooked.filter.indexOf('-A INPUT'))
        : '*nat\n:SLUICE-DNAT - [0:0]\n-A SLUICE-DNAT -j RETURN\nCOMMIT\n';
    const { dp, runner, sysctls } = dataplane((call) => (call.command === 'iptables-save' ? save(call.args[1]!) : ''));
    await dp.init();
    expect(sysctls).toEqual(['net/ipv4/ip_forward=1']);
    expect(runner.calls[0]).toEqual({ command: 'ip', args: ['-batch', '-'], input: 'link add sluice0 type bridge\nlink set sluice0 up\n' });
    const restores = runner.calls.filter((c) => c.command === 'iptables-restore');
    // Only nat lacks hooks; SLUICE-DNAT exists (with rules a container may need), so only SLUICE-POSTROUTING is declared.
    expect(restores.map((c) => c.input)).toEqual([
      '*nat\n:SLUICE-POSTROUTING - [0:0]\n' +
        '-I PREROUTING 1 -m addrtype --dst-type LOCAL -m comment --comment "sluice hook" -j SLUICE-DNAT\n' +
        '-I OUTPUT 1 -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -m comment --comment "sluice hook" -j SLUICE-DNAT\n' +
        '-I POSTROUTING 1 -m comment --comment "sluice hook" -j SLUICE-POSTROUTING\nCOMMIT\n',
    ]);
  });

  it('adds the hook from INPUT to a host hooked by a version without it, keeping SLUICE-FORWARD', async () => {
    const { dp, runner } = dataplane((call) => (call.command === 'iptables-save' ? (call.args[1] === 'filter' ? hooked.filter.replace(/.*INPUT.*\n/g, '') : hooked.nat) : ''));
    await dp.init();
    expect(runner.calls.filter((c) => c.command === 'iptables-restore').map((c) => c.input)).toEqual([
      '*filter\n:SLUICE-INPUT - [0:0]\n-I INPUT 1 -m comment --comment "sluice hook" -j SLUICE-INPUT\nCOMMIT\n',
    ]);
  });

  it('puts the FORWARD hooks back in order on a host hooked by a version without those accepting established traffic', async () => {
    const older = hooked.filter.replace(/.* established .*\n/g, '');
    const { dp, runner } = dataplane((call) => (call.command === 'iptables-save' ? (call.args[1] === 'filter' ? older : hooked.nat) : ''));
    await dp.init();
    // Inserted at the top one by one: the MSS clamp ends up first, then the accepts, then the jump.
    expect(runner.calls.filter((c) => c.command === 'iptables-restore').map((c) => c.input)).toEqual([
      '*filter\n' +
        '-D FORWARD -m comment --comment "sluice hook" -j SLUICE-FORWARD\n' +
        '-D FORWARD -o sluice.vxlan -p tcp --tcp-flags SYN,RST SYN -m comment --comment "sluice hook" -j TCPMSS --clamp-mss-to-pmtu\n' +
        '-I FORWARD 1 -m comment --comment "sluice hook" -j SLUICE-FORWARD\n' +
        '-I FORWARD 1 -o slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established to workload" -j ACCEPT\n' +
        '-I FORWARD 1 -i slv+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "sluice hook: established from workload" -j ACCEPT\n' +
        '-I FORWARD 1 -o sluice.vxlan -p tcp --tcp-flags SYN,RST SYN -m comment --comment "sluice hook" -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n',
    ]);
  });

  // As `ip -j addr show` prints them: the device's own link-local address is not a gateway.
  const inet = (local: string) => ({ family: 'inet', local, prefixlen: 32, scope: 'global' });
  const inet6 = (local: string, scope = 'global') => ({ family: 'inet6', local, prefixlen: scope === 'link' ? 64 : 128, scope });

  it('makes the gateway addresses exactly the given ones in one batch', async () => {
    const shown = [{ ifname: 'sluice0', addr_info: [inet('10.96.0.1'), inet('10.97.0.1'), inet6('fe80::1', 'link')] }];
    const { dp, runner } = dataplane((call) => (call.args[0] === '-j' ? JSON.stringify(shown) : ''));
    await dp.syncGateways(['10.96.0.1', '10.98.0.1']);
    expect(runner.calls[1]?.input).toBe('address add 10.98.0.1/32 dev sluice0\naddress del 10.97.0.1/32 dev sluice0\n');
    runner.calls.length = 0;
    await dp.syncGateways(['10.96.0.1', '10.97.0.1']);
    expect(runner.calls).toHaveLength(1);
  });

  it('holds IPv6 gateways as /128 without DAD, compared in canonical form, and refuses what is no address', async () => {
    const shown = [{ ifname: 'sluice0', addr_info: [inet('10.96.0.1'), inet6('fd00:97::1'), inet6('fe80::1', 'link')] }];
    const { dp, runner } = dataplane((call) => (call.args[0] === '-j' ? JSON.stringify(shown) : ''));
    await dp.syncGateways(['10.96.0.1', 'FD00:96:0::1']);
    expect(runner.calls[1]?.input).toBe('address add fd00:96::1/128 dev sluice0 nodad\naddress del fd00:97::1/128 dev sluice0\n');
    runner.calls.length = 0;
    await expect(dp.syncGateways(['10.96.0.1', 'fd00:96::1/64'])).rejects.toThrow('gateway "fd00:96::1/64" is not an IP address');
    expect(runner.calls).toEqual([]);
  });
});

describe('vxlan and routes', () => {
  const device = { vni: 7, localIp: '192.168.77.1', port: 8472, mtu: 1450 };
  const existing = (info: object) =>
    JSON.stringify([{ ifname: 'sluice.vxlan', address: '0e:12:34:56:78:9a', linkinfo: { info_kind: 'vxlan', info_data: info } }]);

  it('keeps a matching device and its MAC, fixing MTU and state', async () => {
    const { dp, runner } = dataplane((call) => (call.args[0] === '-j' ? existing({ id: 7, local: '192.168.77.1', port: 8472, learning: false }) : ''));
    await expect(dp.ensureVxlan(device)).resolves.toEqual({ mac: '0e:12:34:56:78:9a' });
    expect(runner.calls[1]?.input).toBe('link set sluice.vxlan mtu 1450 up\n');
  });

  it('re-creates a device with other parameters, with the stable MAC', async () => {
    const { dp, runner } = dataplane((call) => (call.args[0] === '-j' ? existing({ id: 8, local: '192.168.77.1', port: 8472, learning: false }) : ''));
    const mac = vxlanMac(7, '192.168.77.1');
    await expect(dp.ensureVxlan(device)).resolves.toEqual({ mac });
    expect(runner.calls[1]?.input).toBe(
      'link del sluice.vxlan\n' +
        `link add sluice.vxlan mtu 1450 address ${mac} type vxlan id 7 local 192.168.77.1 dstport 8472 nolearning\n` +
        'link set sluice.vxlan up\n',
    );
  });

  it('creates an absent device', async () => {
    const { dp, runner } = dataplane(() => '');
    await dp.ensureVxlan(device);
    expect(runner.calls[1]?.input).toMatch(/^link add sluice.vxlan /);
  });

  it('syncs host-gw routes with one read and one batch, not looking at VXLAN tables', async () => {
    const { dp, runner } = dataplane((call) =>
      call.args.includes('show') ? '[{"dst":"10.96.9.0/26","gateway":"192.168.77.9","dev":"eth0","flags":[]}]' : '',
    );
    await dp.syncRoutes([{ kind: 'host-gw', block: '10.96.2.0/26', via: '192.168.77.2' }]);
    expect(runner.commandLines).toEqual(['ip -j route show table all proto 252', 'ip -batch -']);
    expect(runner.calls[1]?.input).toBe('route replace 10.96.2.0/26 via 192.168.77.2 proto 252\nroute del 10.96.9.0/26 proto 252\n');
  });

  it('reads and programs neighbours and FDB entries for VXLAN peers, FDB first', async () => {
    const { dp, runner } = dataplane((call) => (call.args.includes('show') ? '[]' : ''));
    await dp.syncRoutes([{ kind: 'vxlan', block: '10.96.3.0/26', nodeIp: '192.168.77.3', vtepMac: '0e:00:00:00:00:03', mtu: 1450 }]);
    expect(runner.commandLines).toEqual([
      'ip -j route show table all proto 252',
      'ip -j neigh show dev sluice.vxlan nud permanent',
      'bridge -j fdb show dev sluice.vxlan',
      'bridge -batch -',
      'ip -batch -',
    ]);
  });

  it('reads routes of both families at once and turns IPv6 forwarding on with the first IPv6 route', async () => {
    const shown = JSON.stringify([
      { dst: 'fd00:96::9', dev: 'slv0123456789a', metric: 1024, flags: [] },
      { type: 'blackhole', dst: 'fd00:96::40/122', dev: 'lo', metric: 1024, flags: [] },
      { dst: 'fd00:97::/122', gateway: 'fd00:250::9', dev: 'eth0', metric: 1024, flags: [] },
      { dst: 'fd00:98::/122', gateway: 'fd00:250::9', dev: 'eth0', table: '100', flags: [] },
    ]);
    const { dp, runner, sysctls } = dataplane((call) => (call.args.includes('show') ? shown : ''));
    await dp.syncRoutes([{ kind: 'blackhole', block: '10.96.0.0/26' }]);
    expect(sysctls).toEqual([]);
    runner.calls.length = 0;
    await dp.syncRoutes([
      { kind: 'blackhole', block: 'fd00:96::40/122' },
      { kind: 'host-gw', block: 'fd00:99::/122', via: 'fd00:250::2' },
    ]);
    expect(sysctls).toEqual(['net/ipv6/conf/all/forwarding=1']);
    expect(runner.commandLines).toEqual(['ip -j route show table all proto 252', 'ip -batch -']);
    // The endpoint's /128 and the route in another table are not block routes.
    expect(runner.calls[1]?.input).toBe('route replace fd00:99::/122 via fd00:250::2 proto 252\nroute del fd00:97::/122 proto 252\n');
  });

  it('answers on-link and MTU questions from the route the kernel would take', async () => {
    const { dp, runner } = dataplane((call) => {
      if (call.args.includes('get')) {
        if (call.args[3] === '192.168.77.1') return '[{"type":"local","dst":"192.168.77.1","dev":"lo","prefsrc":"192.168.77.1"}]';
        return call.args[3] === '192.168.77.2' ? '[{"dst":"192.168.77.2","dev":"eth0"}]' : '[{"dst":"10.1.1.1","gateway":"192.168.77.254","dev":"eth1"}]';
      }
      if (call.args.includes('address')) return '[{"ifname":"eth0","mtu":1500,"addr_info":[{"family":"inet","local":"192.168.77.1","prefixlen":24}]}]';
      return call.args.includes('eth1') ? '[{"ifname":"eth1","mtu":9000}]' : '[{"ifname":"eth0","mtu":1500}]';
    });
    await expect(dp.isOnLink('192.168.77.2')).resolves.toBe(true);
    await expect(dp.isOnLink('10.1.1.1')).resolves.toBe(false);
    await expect(dp.mtuTowards('10.1.1.1')).resolves.toBe(9000);
    expect(runner.commandLines.slice(-2)).toEqual(['ip -j route get 10.1.1.1', 'ip -j link show dev eth1']);
    // The node's own address routes via lo; what matters is the interface holding it.
    await expect(dp.mtuTowards('192.168.77.1')).resolves.toBe(1500);
    expect(runner.commandLines.slice(-1)).toEqual(['ip -j -4 address show to 192.168.77.1/32']);
  });
});

describe('firewall', () => {
  const state: FirewallState = {
    ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.6'] }],
    filter: [
      { name: 'SLUICE-FORWARD', rules: [{ comment: 'to x', matches: [], action: { kind: 'jump', chain: 'SLUICE-X' } }] },
      { name: 'SLUICE-X', rules: [{ comment: 'drop a', matches: [{ kind: 'set', set: 'sluice-a', sides: 'src' }], action: { kind: 'DROP' } }] },
    ],
    nat: [],
  };
  const kernel: Script = (call) => {
    if (call.command === 'iptables-save') return call.args[1] === 'filter' ? hooked.filter : hooked.nat;
    return '';
  };

  it('reads the kernel once, then writes only differences; an unchanged state costs no process', async () => {
    const { dp, runner } = dataplane(kernel);
    await dp.applyFirewall(state);
    // Rules read back cannot be compared with rules written, so every chain is written once, empty ones too.
    expect(runner.commandLines).toEqual([
      'iptables-save -t filter',
      'iptables-save -t nat',
      'ipset save',
      'ipset restore -exist',
      'iptables-restore --noflush --wait=10',
      'iptables-restore --noflush --wait=10',
    ]);
    expect(runner.calls[5]?.input).toBe('*nat\n:SLUICE-DNAT - [0:0]\n:SLUICE-POSTROUTING - [0:0]\nCOMMIT\n');
    runner.calls.length = 0;

    await dp.applyFirewall(state);
    expect(runner.calls).toEqual([]);

    await dp.applyFirewall({ ...state, filter: [state.filter[0]!, { name: 'SLUICE-X', rules: [{ comment: 'back', matches: [], action: { kind: 'RETURN' } }] }] });
    expect(runner.calls.map((c) => c.input)).toEqual(['*filter\n:SLUICE-X - [0:0]\n-A SLUICE-X -m comment --comment "back" -j RETURN\nCOMMIT\n']);
  });

  it('re-reads the kernel after a failed apply', async () => {
    let failRestore = true;
    const { dp, runner } = dataplane((call) => {
      if (call.command === 'iptables-restore' && failRestore) return { fail: 'iptables-restore: line 5 failed' };
      return kernel(call);
    });
    await expect(dp.applyFirewall(state)).rejects.toThrow(/input line 5: -A SLUICE-FORWARD -m comment --comment "to x" -j SLUICE-X/);
    failRestore = false;
    runner.calls.length = 0;
    await dp.applyFirewall(state);
    expect(runner.commandLines.slice(0, 3)).toEqual(['iptables-save -t filter', 'iptables-save -t nat', 'ipset save']);
  });

  it('keeps the cache when the state is invalid, touching nothing', async () => {
    const { dp, runner } = dataplane(kernel);
    const gone: FirewallState = { ...state, filter: [{ name: 'SLUICE-FORWARD', rules: [{ comment: 'gone', matches: [], action: { kind: 'jump', chain: 'SLUICE-gone' } }] }] };
    await expect(dp.applyFirewall(gone)).rejects.toThrow(/SLUICE-gone/);
    expect(runner.calls).toEqual([]);
  });

  it('verifies against the kernel: intact is quiet, damage empties the cache so the next apply rewrites', async () => {
    let filterSave = '';
    const { dp, runner } = dataplane((call) => {
      if (call.command === 'iptables-save' && call.args[1] === 'filter' && filterSave !== '') return filterSave;
      if (call.command === 'ipset' && call.args[0] === 'save') return 'create sluice-a hash:ip family inet\nadd sluice-a 10.96.0.6\n';
      return kernel(call);
    });
    await expect(dp.verifyFirewall()).resolves.toEqual([]); // nothing applied yet
    await dp.applyFirewall(state);
    filterSave = hooked.filter.replace(
      'COMMIT',
      ':SLUICE-X - [0:0]\n-A SLUICE-FORWARD -m comment --comment "to x" -j SLUICE-X\n-A SLUICE-X -m set --match-set sluice-a src -m comment --comment "drop a" -j DROP\nCOMMIT',
    );
    await expect(dp.verifyFirewall()).resolves.toEqual([]);

    filterSave = filterSave.replace(/^-A SLUICE-X.*\n/m, ''); // someone ran iptables -F SLUICE-X
    await expect(dp.verifyFirewall()).resolves.toEqual(['filter chain SLUICE-X has 0 rules that differ from the 1 applied']);
    runner.calls.length = 0;
    await dp.applyFirewall(state);
    expect(runner.commandLines).toEqual([
      'iptables-save -t filter',
      'iptables-save -t nat',
      'ipset save',
      'iptables-restore --noflush --wait=10',
      'iptables-restore --noflush --wait=10',
    ]);
    expect(runner.calls[3]?.input).toContain('-A SLUICE-X -m comment --comment "drop a" -m set --match-set sluice-a src -j DROP');
  });
});

describe('firewall changes', () => {
  const drop = (set: string): Rule => ({ comment: `drop ${set}`, matches: [{ kind: 'set', set, sides: 'src' }], action: { kind: 'DROP' } });
  const state: FirewallState = {
    ipsets: [{ name: 'sluice-a', type: 'hash:ip', members: ['10.96.0.6'] }],
    filter: [{ name: 'SLUICE-FORWARD', rules: [{ comment: 'to x', matches: [], action: { kind: 'jump', chain: 'SLUICE-X' } }] }, { name: 'SLUICE-X', rules: [drop('sluice-a')] }],
    nat: [],
  };
  const kernel: Script = (call) => (call.command === 'iptables-save' ? (call.args[1] === 'filter' ? hooked.filter : hooked.nat) : '');
  const none: FirewallChange = { createdSets: [], members: [], chains: [], removedChains: [], destroyedSets: [] };

  it('writes a member change as one ipset restore, adds and removes, and nothing else', async () => {
    const { dp, runner } = dataplane(kernel);
    await dp.applyFirewall(state);
    runner.calls.length = 0;
    await dp.applyFirewallChange({ ...none, members: [{ name: 'sluice-a', add: ['10.96.0.7/32'], remove: ['10.96.0.6'] }] });
    expect(runner.calls.map((c) => [c.command, ...c.args, c.input].join(' '))).toEqual([
      'ipset restore -exist add sluice-a 10.96.0.7\n',
      'ipset restore -exist del sluice-a 10.96.0.6\n',
    ]);
  });

  it('sends both families\' changes made at once as one ipset restore; its failure is both families\'', async () => {
    let failRestore = false;
    const { dp, runner } = dataplane((call) =>
      call.command === 'ipset' && failRestore ? { fail: 'ipset v7.17: Error in line 2: Syntax error' } : call.command === 'ip6tables-save' ? kernel({ ...call, command: 'iptables-save' }) : kernel(call),
    );
    const set = { 4: 'sluice-a', 6: 'sluice6a' };
    const change = (family: 4 | 6, member: string) => dp.applyFirewallChange({ ...none, members: [{ name: set[family], add: [member], remove: [] }] }, family);
    await dp.applyFirewall(state, 4);
    const filter6 = [state.filter[0]!, { name: 'SLUICE-X', rules: [drop('sluice6a')] }];
    await dp.applyFirewall({ ipsets: [{ name: 'sluice6a', type: 'hash:ip', members: ['fd00:96::6'] }], filter: filter6, nat: [] }, 6);
    runner.calls.length = 0;
    await Promise.all([change(4, '10.96.0.7'), change(6, 'fd00:96::7')]);
    expect(runner.calls.map((c) => [c.command, ...c.args, c.input].join(' '))).toEqual(['ipset restore -exist add sluice-a 10.96.0.7\nadd sluice6a fd00:96::7\n']);
    // One family alone: its own lines, at once.
    runner.calls.length = 0;
    await change(6, 'fd00:96::8');
    expect(runner.calls.map((c) => c.input)).toEqual(['add sluice6a fd00:96::8\n']);
    failRestore = true;
    const results = await Promise.allSettled([change(4, '10.96.0.9'), change(6, 'fd00:96::9')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('creates sets before the chains that use them and destroys them after, rewriting only the chains given', async () => {
    const { dp, runner } = dataplane(kernel);
    await dp.applyFirewall(state);
    runner.calls.length = 0;
    await dp.applyFirewallChange({
      ...none,
      createdSets: [{ name: 'sluice-b', type: 'hash:net', members: ['10.1.0.0/16'] }],
      chains: [{ table: 'filter', chain: { name: 'SLUICE-X', rules: [drop('sluice-b')] } }],
      destroyedSets: ['sluice-a'],
    });
    expect(runner.calls.map((c) => c.input)).toEqual([
      'create sluice-b hash:net family inet hashsize 1024 maxelem 1048576\nadd sluice-b 10.1.0.0/16\n',
      '*filter\n:SLUICE-X - [0:0]\n-A SLUICE-X -m comment --comment "drop sluice-b" -m set --match-set sluice-b src -j DROP\nCOMMIT\n',
      'destroy sluice-a\n',
    ]);
    // The cache followed: the same state again costs nothing.
    runner.calls.length = 0;
    await dp.applyFirewall({ ...state, ipsets: [{ name: 'sluice-b', type: 'hash:net', members: ['10.1.0.0/16'] }], filter: [state.filter[0]!, { name: 'SLUICE-X', rules: [drop('sluice-b')] }] });
    expect(runner.calls).toEqual([]);
  });

  it('refuses a change before any apply and after a failed one, touching nothing', async () => {
    let failRestore = false;
    const { dp, runner } = dataplane((call) => (call.command === 'ipset' && call.args[0] === 'restore' && failRestore ? { fail: 'ipset: line 1 failed' } : kernel(call)));
    const change = { ...none, members: [{ name: 'sluice-a', add: ['10.96.0.7'], remove: [] }] };
    await expect(dp.applyFirewallChange(change)).rejects.toThrow(/apply the full state/);
    expect(runner.calls).toEqual([]);
    await dp.applyFirewall(state);
    failRestore = true;
    await expect(dp.applyFirewallChange(change)).rejects.toThrow(DataplaneError);
    failRestore = false;
    runner.calls.length = 0;
    await expect(dp.applyFirewallChange(change)).rejects.toThrow(/apply the full state/);
    expect(runner.calls).toEqual([]);
    // Positive control: a full apply makes changes possible again.
    await dp.applyFirewall(state);
    await expect(dp.applyFirewallChange(change)).resolves.toBeUndefined();
  });

  it.each<[string, Partial<FirewallChange>, RegExp]>([
    ['members of a set not in the state', { members: [{ name: 'sluice-gone', add: ['10.0.0.1'], remove: [] }] }, /sluice-gone/],
    ['a bad member', { members: [{ name: 'sluice-a', add: ['10.0.0.0/24'], remove: [] }] }, /not an IPv4 address/],
    ['a set created twice', { createdSets: [{ name: 'sluice-a', type: 'hash:ip', members: [] }] }, /exists already/],
    ['a chain matching a destroyed set', { destroyedSets: ['sluice-a'], chains: [{ table: 'filter', chain: { name: 'SLUICE-Y', rules: [drop('sluice-a')] } }] }, /sluice-a/],
    ['a top-level chain removed', { removedChains: [{ table: 'filter', name: 'SLUICE-FORWARD' }] }, /cannot be removed/],
  ])('rejects %s and keeps its cache, touching nothing', async (_what, bad, message) => {
    const { dp, runner } = dataplane(kernel);
    await dp.applyFirewall(state);
    runner.calls.length = 0;
    await expect(dp.applyFirewallChange({ ...none, ...bad })).rejects.toThrow(message);
    expect(runner.calls).toEqual([]);
    await dp.applyFirewallChange({ ...none, members: [{ name: 'sluice-a', add: ['10.96.0.9'], remove: [] }] });
    expect(runner.calls.map((c) => c.input)).toEqual(['add sluice-a 10.96.0.9\n']);
  });
});
