import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentHelp, loadAgentConfig, loadStoreSettings } from '../../src/config';
import { BadRequestError } from '../../src/errors';

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

  it('takes --node-ip6 in canonical form, none where no interface holds --node-ip, and refuses what is not IPv6', () => {
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1', 'node-ip6': '2001:DB8:0:0::7' }, {}).nodeIp6).toBe('2001:db8::7');
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}).nodeIp6).toBeUndefined();
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', 'node-ip6': '192.0.2.1' }, {})).toThrow('--node-ip6 192.0.2.1 is not an IPv6 address');
  });

  it('takes --ipv6-outbound routed (the default) or masquerade, nothing else', () => {
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}).ipv6Outbound).toBe('routed');
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, { SLUICE_IPV6_OUTBOUND: 'masquerade' }).ipv6Outbound).toBe('masquerade');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', 'ipv6-outbound': 'nat' }, {})).toThrow('--ipv6-outbound nat: expected routed or masquerade');
  });

  it('reads --protect as IPv4 addresses, each with a TCP port or none, and refuses anything else', () => {
    const config = loadAgentConfig({ 'node-ip': '192.0.2.1' }, { SLUICE_PROTECT: '10.0.0.5:8500, 10.0.0.6' });
    expect(config.protect).toEqual([{ address: '10.0.0.5', port: 8500 }, { address: '10.0.0.6' }]);
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}).protect).toEqual([]);
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: 'etcd.local:2379' }, {})).toThrow('--protect etcd.local:2379: "etcd.local:2379" is not ADDR or ADDR:PORT');
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: '10.0.0.5:1:2' }, {})).toThrow(/"10.0.0.5:1:2" is not ADDR or ADDR:PORT/);
    expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', protect: '10.0.0.5:70000' }, {})).toThrow('--protect 70000: expected a whole number from 1 to 65535');
  });

  it('serves metrics only when --metrics-addr (or SLUICE_METRICS_ADDR) gives an IPv4 HOST:PORT', () => {
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, {}).metricsAddr).toBeUndefined();
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1' }, { SLUICE_METRICS_ADDR: '0.0.0.0:9453' }).metricsAddr).toEqual({ host: '0.0.0.0', port: 9453 });
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1', 'metrics-addr': '192.0.2.1:9100' }, { SLUICE_METRICS_ADDR: '0.0.0.0:9453' }).metricsAddr).toEqual({
      host: '192.0.2.1',
      port: 9100,
    });
    for (const bad of ['9453', ':9453', 'localhost:9453', '192.0.2.1:0', '192.0.2.1:70000', '192.0.2.1:']) {
      expect(() => loadAgentConfig({ 'node-ip': '192.0.2.1', 'metrics-addr': bad }, {})).toThrow(`--metrics-addr ${bad}: expected HOST:PORT`);
    }
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

  it('takes --encryption none|wireguard (default none, or SLUICE_ENCRYPTION) and the WireGuard port and key file', () => {
    const node = { 'node-ip': '192.0.2.1' };
    expect(loadAgentConfig(node, {})).toMatchObject({ encryption: 'none', wireguardPort: 51820, wireguardKeyFile: '/var/lib/sluice/wireguard.key' });
    expect(loadAgentConfig(node, { SLUICE_ENCRYPTION: 'wireguard', SLUICE_WIREGUARD_PORT: '51000' })).toMatchObject({ encryption: 'wireguard', wireguardPort: 51000 });
    expect(() => loadAgentConfig({ ...node, encryption: 'ipsec' }, {})).toThrow('--encryption ipsec: expected none or wireguard');
    expect(() => loadAgentConfig({ ...node, 'wireguard-port': '70000' }, {})).toThrow('--wireguard-port 70000: expected a whole number from 1 to 65535');
  });

  it('documents every flag with its env var in --help', () => {
    for (const flag of ['store', 'socket', 'node', 'node-ip', 'node-ip6', 'docker-host', 'backend', 'protect', 'metrics-addr', 'dns-address', 'dns-upstream', 'encryption', 'wireguard-port']) {
      expect(agentHelp()).toContain(`--${flag}`);
      expect(agentHelp()).toContain(`SLUICE_${flag.toUpperCase().replace(/-/g, '_')}`);
    }
  });
});

describe('store settings (agent and CLI alike)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
    writeFileSync(join(dir, 'password'), 'from-the-file\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the TLS files and the login from flags or SLUICE_ETCD_* env vars, the password never from a flag', () => {
    const settings = loadStoreSettings(
      { 'etcd-ca': '/etc/sluice/ca.crt', 'etcd-user': 'sluice' },
      { SLUICE_STORE: 'etcd://a:2379,b:2379', SLUICE_ETCD_CERT: '/c.crt', SLUICE_ETCD_KEY: '/c.key', SLUICE_ETCD_PASSWORD: 'pw' },
    );
    expect(settings).toEqual({
      store: 'etcd://a:2379,b:2379',
      etcd: { caFile: '/etc/sluice/ca.crt', certFile: '/c.crt', keyFile: '/c.key', user: 'sluice', password: 'pw' },
    });
    expect(loadStoreSettings({ 'etcd-password': 'on-the-command-line' }, {}).etcd).toEqual({});
    expect(loadStoreSettings({}, {})).toEqual({ store: 'file:/var/lib/sluice/state.json', etcd: {} });
    expect(loadStoreSettings({}, { SLUICE_ETCD_CA: '', SLUICE_ETCD_USER: '' }).etcd).toEqual({});
  });

  it('reads the password file\'s first line, which wins over SLUICE_ETCD_PASSWORD', () => {
    const etcd = loadStoreSettings({ 'etcd-user': 'sluice', 'etcd-password-file': join(dir, 'password') }, { SLUICE_ETCD_PASSWORD: 'env' }).etcd;
    expect(etcd.password).toBe('from-the-file');
    expect(loadAgentConfig({ 'node-ip': '192.0.2.1', 'etcd-user': 'u' }, { SLUICE_ETCD_PASSWORD: 'pw' }).etcd).toEqual({ user: 'u', password: 'pw' });
  });

  it('refuses incomplete settings with a message saying what is missing', () => {
    expect(() => loadStoreSettings({ 'etcd-user': 'sluice' }, {})).toThrow(
      new BadRequestError('--etcd-user sluice needs a password: set SLUICE_ETCD_PASSWORD or --etcd-password-file FILE'),
    );
    expect(() => loadStoreSettings({}, { SLUICE_ETCD_PASSWORD: 'pw' })).toThrow('an etcd password is set but no --etcd-user');
    expect(() => loadStoreSettings({ 'etcd-cert': '/c.crt' }, {})).toThrow('--etcd-cert and --etcd-key go together');
    expect(() => loadStoreSettings({ 'etcd-user': 'u', 'etcd-password-file': join(dir, 'absent') }, {})).toThrow(
      `--etcd-password-file ${join(dir, 'absent')}: cannot read it: ENOENT`,
    );
  });

  it('documents the etcd flags in --help, and --grace-period says who releases the blocks', () => {
    for (const flag of ['etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password-file']) {
      expect(agentHelp()).toContain(`--${flag}`);
      expect(agentHelp()).toContain(`SLUICE_${flag.toUpperCase().replace(/-/g, '_')}`);
    }
    const grace = agentHelp().split('\n').find((line) => line.includes('--grace-period'));
    expect(grace).toContain('before the surviving agents release them');
    expect(grace).not.toContain('--reclaim');
  });
});
