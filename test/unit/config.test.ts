import { agentHelp, loadAgentConfig } from '../../src/config';

describe('agent configuration', () => {
  it('takes every flag also from SLUICE_<FLAG>, the flag winning', () => {
    const config = loadAgentConfig(
      { 'node-ip': '192.0.2.1', backend: 'vxlan' },
      { SLUICE_NODE_IP: '192.0.2.99', SLUICE_NODE: 'h7', SLUICE_STORE: 'etcd://127.0.0.1:2379', SLUICE_BLOCK_SIZE: '24' },
    );
    expect(config).toMatchObject({ nodeIp: '192.0.2.1', node: 'h7', store: 'etcd://127.0.0.1:2379', backend: 'vxlan', blockSize: 24 });
    expect(config.socket).toBe('/run/docker/plugins/sluice.sock');
  });

  it('refuses bad values with a message naming the flag', () => {
    expect(() => loadAgentConfig({ backend: 'gre', 'node-ip': '192.0.2.1' }, {})).toThrow('--backend gre: expected host-gw, vxlan or auto');
    expect(() => loadAgentConfig({ 'node-ip': '300.1.1.1' }, {})).toThrow('--node-ip 300.1.1.1 is not an IPv4 address');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', mtu: '9' }, {})).toThrow('--mtu 9: expected a whole number from 576 to 65000');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', node: 'a b' }, {})).toThrow(/--node a b/);
  });

  it('reads --protect as IPv4 addresses, each with a TCP port or none, and refuses anything else', () => {
    const config = loadAgentConfig({ 'node-ip': '192.0.2.1' }, { SLUICE_PROTECT: '10.0.0.5:8500, 10.0.0.6' });
    expect(config.protect).toEqual([{ address: '10.0.0.5', port: 8500 }, { address: '10.0.0.6' }]);
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}).protect).toEqual([]);
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: 'etcd.local:2379' }, {})).toThrow('--protect etcd.local:2379: "etcd.local:2379" is not ADDR or ADDR:PORT');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: '10.0.0.5:1:2' }, {})).toThrow(/"10.0.0.5:1:2" is not ADDR or ADDR:PORT/);
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: '10.0.0.5:70000' }, {})).toThrow('--protect 70000: expected a whole number from 1 to 65535');
  });

  it('serves names on --dns-address, forwarding to --dns-upstream or else to resolv.conf\'s nameservers but itself', () => {
    const resolvConf = (): string => 'search lan\nnameserver 169.254.53.53\nnameserver 192.0.2.53\n';
    const defaults = loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}, resolvConf);
    expect({ address: defaults.dnsAddress, upstreams: defaults.dnsUpstreams }).toEqual({
      address: '169.254.53.53',
      upstreams: [{ host: '192.0.2.53', port: 53, family: 4 }],
    });
    const given = loadAgentConfig({ 'node-ip': '192.0.2.1', 'dns-address': '169.254.1.1' }, { SLUICE_DNS_UPSTREAM: '10.0.0.53:5353' }, resolvConf);
    expect({ address: given.dnsAddress, upstreams: given.dnsUpstreams }).toEqual({
      address: '169.254.1.1',
      upstreams: [{ host: '10.0.0.53', port: 5353, family: 4 }],
    });
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', 'dns-address': 'dns.local' }, {}, resolvConf)).toThrow('--dns-address dns.local is not an IPv4 address');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', 'dns-upstream': '169.254.53.53' }, {}, resolvConf)).toThrow(/resolver's own address/);
  });

  it('documents every flag with its env var in --help', () => {
    for (const flag of ['store', 'socket', 'node', 'node-ip', 'docker-host', 'backend', 'protect', 'dns-address', 'dns-upstream']) {
      expect(agentHelp()).toContain(`--${flag}`);
      expect(agentHelp()).toContain(`SLUICE_${flag.toUpperCase().replace(/-/g, '_')}`);
    }
  });
});
