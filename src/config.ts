/**
 * The agent's configuration: flags, each also an env var SLUICE_<FLAG>
 * (e.g. --node-ip or SLUICE_NODE_IP); a flag wins over its env var. The only
 * place that reads process.env for settings; the result is frozen.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BadRequestError, errorMessage } from './errors';
import { NODE_NAME } from './model';
import { parseIp } from './net/ipv4';
import * as ip from './net/ip';
import type { ProtectedDestination } from './policy/protect';
import { type Upstream, parseUpstreams, resolvConfUpstreams } from './dns/upstreams';
import { DEFAULT_STORE_URL, type EtcdAccess } from './store/open-store';
import type { Encryption } from './encryption/wireguard';

export type Backend = 'host-gw' | 'vxlan' | 'auto';

export interface StoreSettings {
  store: string;
  /** TLS files and login for an etcd store; empty for a plain one. */
  etcd: EtcdAccess;
}

export interface AgentConfig extends StoreSettings {
  socket: string;
  node: string;
  nodeIp: string;
  /** The next hop of other hosts' IPv6 host-gw routes to this one; undefined: IPv6 to this host goes through VXLAN. */
  nodeIp6: string | undefined;
  dockerHost: string;
  backend: Backend;
  mtu: number | undefined;
  defaultSupernet: ip.Cidr;
  defaultSubnetPrefix: number;
  blockSize: number;
  vxlanVni: number;
  vxlanPort: number;
  /** Seconds a node may be dead before its blocks may be reclaimed. */
  gracePeriod: number;
  /** Seconds between full resyncs of routes and firewall against the kernel. */
  resyncInterval: number;
  /** What Docker calls this driver: the socket's file name, or a managed plugin's full name. */
  driverName: string;
  /** Where the net/ sysctls are written (a managed plugin gets the host's mounted elsewhere). */
  sysctlNetDir: string;
  /** Destinations containers may never open besides the store's, Docker's and the agents' (--protect). */
  protect: ProtectedDestination[];
  /** Where /metrics is served (--metrics-addr); none when undefined. */
  metricsAddr: MetricsAddress | undefined;
  /** Where the resolver serves container names (port 53), kept on the host like the gateways. */
  dnsAddress: string;
  /** Where names that are not the cluster's are forwarded; empty: they get SERVFAIL. */
  dnsUpstreams: Upstream[];
  /** Between hosts: in the clear, or through WireGuard. */
  encryption: Encryption;
  /** How containers' IPv6 leaves the cluster: routed as it is (the default), or masqueraded behind the host's address (NAT66). */
  ipv6Outbound: 'routed' | 'masquerade';
  wireguardPort: number;
  /** This host's WireGuard private key (made on first start, mode 0600). */
  wireguardKeyFile: string;
}

export interface MetricsAddress {
  host: string;
  port: number;
}

interface FlagSpec {
  flag: string;
  help: string;
  default?: string;
}

/** How to reach the store: the agent's flags and every CLI command's. */
export const STORE_FLAGS: FlagSpec[] = [
  { flag: 'store', help: 'etcd://HOST:PORT[,HOST:PORT…] for a cluster (https://… for TLS), file:PATH for one host', default: DEFAULT_STORE_URL },
  { flag: 'etcd-ca', help: 'PEM file of the CA that signed etcd\'s certificate; turns TLS on', default: '(TLS only with https://, then the system\'s CAs)' },
  { flag: 'etcd-cert', help: 'PEM client certificate, for an etcd that requires one (with --etcd-key); turns TLS on' },
  { flag: 'etcd-key', help: 'PEM private key of --etcd-cert' },
  { flag: 'etcd-user', help: 'etcd user to log in as; the password comes from SLUICE_ETCD_PASSWORD or --etcd-password-file, never the command line' },
  { flag: 'etcd-password-file', help: 'file holding the password of --etcd-user' },
];

/** The resolver of container names (see src/dns). */
const DNS_FLAGS: FlagSpec[] = [
  { flag: 'dns-address', help: 'address the container-name resolver serves on (port 53); point dockerd\'s --dns at it', default: '169.254.53.53' },
  { flag: 'dns-upstream', help: 'IP[:PORT][,…]: where other names are forwarded', default: '(the nameservers of /etc/resolv.conf, never --dns-address)' },
];

export const AGENT_FLAGS: FlagSpec[] = [
  ...STORE_FLAGS,
  { flag: 'socket', help: 'plugin socket; its file name is the driver name', default: '/run/docker/plugins/sluice.sock' },
  { flag: 'node', help: 'this host\'s name in the cluster', default: '(hostname)' },
  { flag: 'node-ip', help: 'this host\'s address that other hosts reach it on', default: '(first non-loopback IPv4)' },
  { flag: 'node-ip6', help: 'this host\'s IPv6 address that other hosts reach it on, for IPv6 host-gw routes', default: '(first global IPv6 beside --node-ip, if any)' },
  { flag: 'docker-host', help: 'Docker Engine API: unix:///PATH or tcp://HOST:PORT', default: 'unix:///var/run/docker.sock' },
  { flag: 'backend', help: 'how blocks of other hosts are reached: host-gw, vxlan or auto (host-gw when on the same link)', default: 'auto' },
  { flag: 'mtu', help: 'container MTU', default: "(the underlay's with auto, − 50 with vxlan, 1500 with host-gw, 1440 with --encryption wireguard)" },
  { flag: 'default-supernet', help: 'where networks created without --subnet get one', default: '10.96.0.0/12' },
  { flag: 'default-subnet-size', help: 'prefix length of subnets picked from the supernet', default: '16' },
  { flag: 'block-size', help: 'prefix length of the address blocks each host claims (per network: --ipam-opt block-size=N)', default: '26' },
  { flag: 'vxlan-vni', help: 'VXLAN network identifier', default: '4242' },
  { flag: 'vxlan-port', help: 'VXLAN UDP port', default: '8472' },
  { flag: 'grace-period', help: 'seconds a dead node keeps its blocks before the surviving agents release them', default: '86400' },
  { flag: 'resync-interval', help: 'seconds between checks that routes and rules are still in the kernel', default: '10' },
  { flag: 'driver-name', help: 'the driver name Docker uses (a managed plugin: its full name, e.g. sluice/sluice:latest)', default: '(the socket\'s file name)' },
  { flag: 'sysctl-net-dir', help: 'where net/ sysctls are written', default: '/proc/sys/net' },
  {
    flag: 'protect',
    help: 'ADDR[:PORT][,…]: more of the control plane no container may open, whatever its policy (a PORT is TCP; ADDR alone closes every port)',
    default: '(none: the store and the Docker API ports of every node are closed anyway)',
  },
  // Metrics.
  {
    flag: 'metrics-addr',
    help: 'HOST:PORT to serve Prometheus metrics on, at /metrics (HOST an IPv4 address, 0.0.0.0 for all); PORT is closed to containers',
    default: '(off)',
  },
  ...DNS_FLAGS,
  // Encryption between hosts.
  { flag: 'encryption', help: 'traffic between hosts: none, or wireguard (every host of the cluster the same)', default: 'none' },
  { flag: 'ipv6-outbound', help: 'containers\' IPv6 to outside the cluster: routed (their addresses as they are), or masquerade (NAT66, behind the host\'s)', default: 'routed' },
  { flag: 'wireguard-port', help: 'UDP port of this host\'s WireGuard device, on --node-ip', default: '51820' },
  { flag: 'wireguard-key-file', help: 'this host\'s WireGuard private key; made on first start (mode 0600)', default: '/var/lib/sluice/wireguard.key' },
];

export function envName(flag: string): string {
  return `SLUICE_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function agentHelp(): string {
  const lines = AGENT_FLAGS.map((f) => `  --${f.flag.padEnd(20)} ${f.help}\n  ${''.padEnd(22)} env ${envName(f.flag)}; default ${f.default ?? '-'}`);
  return `Usage: sluice agent [flags]\n\nRuns the Docker network and IPAM plugin of this host.\n\n${lines.join('\n')}\n`;
}

function integer(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BadRequestError(`--${flag} ${text}: expected a whole number from ${min} to ${max}`);
  }
  return value;
}

/** `--protect ADDR[:PORT][,…]`: IPv4 addresses, each with a TCP port or none (every port). */
function protectList(text: string): ProtectedDestination[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => {
      const [address, port, extra] = item.split(':');
      if (extra !== undefined || parseIp(address ?? '') === undefined) {
        throw new BadRequestError(`--protect ${text}: "${item}" is not ADDR or ADDR:PORT with an IPv4 ADDR`);
      }
      return port === undefined ? { address: address! } : { address: address!, port: integer('protect', port, 1, 65535) };
    });
}

/** `--metrics-addr HOST:PORT`, HOST an IPv4 address. */
function metricsAddress(text: string): MetricsAddress {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon < 0 || parseIp(host) === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BadRequestError(`--metrics-addr ${text}: expected HOST:PORT, HOST an IPv4 address and PORT from 1 to 65535`);
  }
  return { host, port };
}

function firstIpv4(): string {
  for (const addresses of Object.values(os.networkInterfaces())) {
    const found = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  throw new BadRequestError('no non-loopback IPv4 address found: pass --node-ip');
}

/** A global (not link-local) IPv6 address of the interface that holds `nodeIp`: on the same link as the peers it reaches. */
function ipv6Beside(nodeIp: string): string | undefined {
  const holder = Object.values(os.networkInterfaces()).find((addresses) => addresses?.some((a) => a.address === nodeIp));
  const found = holder?.find((a) => a.family === 'IPv6' && !a.internal && a.scopeid === 0);
  return found && ip.formatIp(ip.parseIp(found.address)!);
}

/** `--node-ip6`, canonical. */
function nodeIp6(given: string | undefined, nodeIp: string): string | undefined {
  if (given === undefined) return ipv6Beside(nodeIp);
  const parsed = ip.parseIp(given);
  if (parsed?.family !== 6) throw new BadRequestError(`--node-ip6 ${given} is not an IPv6 address`);
  return ip.formatIp(parsed);
}

type Flags = Record<string, string | undefined>;

function setting(flags: Flags, env: NodeJS.ProcessEnv): (flag: string) => string | undefined {
  return (flag) => flags[flag] ?? env[envName(flag)];
}

/** The store URL and how to reach a secured etcd, from parsed flags and the environment. */
export function loadStoreSettings(flags: Flags, env: NodeJS.ProcessEnv = process.env): StoreSettings {
  const get = setting(flags, env);
  // Empty counts as unset: `docker plugin set SLUICE_ETCD_CA=` is how a managed plugin clears one.
  const [caFile, certFile, keyFile, user, passwordFile] = ['etcd-ca', 'etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password-file'].map(
    (flag) => get(flag) || undefined,
  );
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new BadRequestError('--etcd-cert and --etcd-key go together: a client certificate needs its private key');
  }
  const password = passwordFile === undefined ? env['SLUICE_ETCD_PASSWORD'] : readPassword(passwordFile);
  if (user === undefined && password !== undefined) {
    throw new BadRequestError('an etcd password is set but no --etcd-user: pass the user it belongs to');
  }
  if (user !== undefined && !password) {
    throw new BadRequestError(`--etcd-user ${user} needs a password: set SLUICE_ETCD_PASSWORD or --etcd-password-file FILE`);
  }
  const etcd = Object.fromEntries(
    Object.entries({ caFile, certFile, keyFile, user, password }).filter(([, value]) => value !== undefined),
  ) as EtcdAccess;
  return { store: get('store') ?? DEFAULT_STORE_URL, etcd };
}

/** The file's first line: editors and `echo` end it with a newline that is not part of the password. */
function readPassword(file: string): string {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/)[0]!;
  } catch (err) {
    throw new BadRequestError(`--etcd-password-file ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

/** The host's resolv.conf, for the default --dns-upstream; a host without one has no upstream. */
function hostResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // No resolv.conf: no upstreams, which the agent says at start.
    return '';
  }
}

/**
 * Builds the config from parsed flags (name → value) and the environment;
 * `resolvConf` gives the text the default upstreams come from.
 */
export function loadAgentConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env, resolvConf: () => string = hostResolvConf): AgentConfig {
  const get = setting(flags, env);
  const text = (flag: string): string => get(flag) ?? AGENT_FLAGS.find((f) => f.flag === flag)!.default!;
  const backend = text('backend');
  if (backend !== 'host-gw' && backend !== 'vxlan' && backend !== 'auto') {
    throw new BadRequestError(`--backend ${backend}: expected host-gw, vxlan or auto`);
  }
  const nodeIp = get('node-ip') ?? firstIpv4();
  if (parseIp(nodeIp) === undefined) throw new BadRequestError(`--node-ip ${nodeIp} is not an IPv4 address`);
  const supernet = ip.parseCidr(text('default-supernet'));
  if (supernet?.family !== 4) throw new BadRequestError(`--default-supernet ${text('default-supernet')} is not an IPv4 CIDR`);
  const node = get('node') ?? os.hostname();
  if (!NODE_NAME.test(node)) {
    throw new BadRequestError(`--node ${node}: use letters, digits, '.', '_' and '-' only`);
  }
  const mtu = get('mtu');
  const metricsAddr = get('metrics-addr');
  const dnsAddress = text('dns-address');
  if (parseIp(dnsAddress) === undefined) throw new BadRequestError(`--dns-address ${dnsAddress} is not an IPv4 address`);
  const dnsUpstream = get('dns-upstream');
  const ipv6Outbound = text('ipv6-outbound');
  if (ipv6Outbound !== 'routed' && ipv6Outbound !== 'masquerade') throw new BadRequestError(`--ipv6-outbound ${ipv6Outbound}: expected routed or masquerade`);
  const encryption = text('encryption');
  if (encryption !== 'none' && encryption !== 'wireguard') throw new BadRequestError(`--encryption ${encryption}: expected none or wireguard`);
  return Object.freeze({
    ...loadStoreSettings(flags, env),
    socket: text('socket'),
    node,
    nodeIp,
    nodeIp6: nodeIp6(get('node-ip6'), nodeIp),
    dockerHost: text('docker-host'),
    backend,
    mtu: mtu === undefined ? undefined : integer('mtu', mtu, 576, 65000),
    defaultSupernet: supernet,
    defaultSubnetPrefix: integer('default-subnet-size', text('default-subnet-size'), supernet.prefix, 30),
    blockSize: integer('block-size', text('block-size'), 16, 30),
    vxlanVni: integer('vxlan-vni', text('vxlan-vni'), 1, 16777215),
    vxlanPort: integer('vxlan-port', text('vxlan-port'), 1, 65535),
    gracePeriod: integer('grace-period', text('grace-period'), 0, 10 * 365 * 86400),
    resyncInterval: integer('resync-interval', text('resync-interval'), 1, 3600),
    driverName: get('driver-name') ?? path.basename(text('socket'), '.sock'),
    sysctlNetDir: text('sysctl-net-dir'),
    protect: protectList(get('protect') ?? ''),
    metricsAddr: metricsAddr === undefined ? undefined : metricsAddress(metricsAddr),
    dnsAddress,
    dnsUpstreams: dnsUpstream === undefined ? resolvConfUpstreams(resolvConf(), dnsAddress) : parseUpstreams(dnsUpstream, dnsAddress),
    encryption,
    ipv6Outbound,
    wireguardPort: integer('wireguard-port', text('wireguard-port'), 1, 65535),
    wireguardKeyFile: text('wireguard-key-file'),
  });
}
