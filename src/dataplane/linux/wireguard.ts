/**
 * The WireGuard device through iproute2 and `wg`: kernel WireGuard when the
 * module is there, else Debian's userspace `wireguard-go` on a TUN device,
 * configured with the same `wg` tool (through its socket in /run/wireguard).
 * The whole configuration goes in with one `wg syncconf`, which changes only
 * what differs: peers that stay keep their sessions.
 *
 * wireguard-go runs detached from the agent, like the kernel device outlives
 * it: an agent restart does not cut traffic between hosts.
 */
import { spawn } from 'node:child_process';
import { DataplaneError } from '../../errors';
import { WIREGUARD_KEY } from '../../encryption/keys';
import { parseIp } from '../../net/ipv4';
import { parseCidr } from '../../net/ip';
import type { WireguardImplementation } from '../../model';
import type { WireguardSettings } from '../dataplane';
import { WIREGUARD_DEVICE } from '../../firewall/names';
import { CommandError, batchLine, type CommandRunner } from './command-runner';
import { parseJson } from './routes';

interface KernelLinkKind {
  linkinfo?: { info_kind?: string };
}

/** Starts `wireguard-go` for the device; resolves once it runs, rejects if it cannot start. */
export type StartUserspace = (device: string) => Promise<void>;

const USERSPACE_START_TIMEOUT_MS = 5000;

/** Pure: the `wg syncconf` text for `settings`; every value checked, so none can add a line or a key. */
export function wireguardConfig(settings: WireguardSettings): string {
  const key = (value: string): string => {
    if (!WIREGUARD_KEY.test(value)) throw new DataplaneError('refusing a WireGuard key that is not base64 of 32 bytes');
    return value;
  };
  const lines = ['[Interface]', `PrivateKey = ${key(settings.privateKey)}`, `ListenPort = ${port(settings.listenPort)}`];
  for (const peer of settings.peers) {
    const [ip, peerPort, extra] = peer.endpoint.split(':');
    if (parseIp(ip ?? '') === undefined || !/^\d+$/.test(peerPort ?? '') || extra !== undefined) throw new DataplaneError(`WireGuard endpoint "${peer.endpoint}" is not IPV4:PORT`);
    // Either family: the tunnel carries IPv6 blocks over the IPv4 underlay as well.
    for (const cidr of peer.allowedIps) if (parseCidr(cidr) === undefined) throw new DataplaneError(`WireGuard allowed IP "${cidr}" is not a CIDR`);
    lines.push('', '[Peer]', `PublicKey = ${key(peer.publicKey)}`, `Endpoint = ${ip!}:${port(Number(peerPort))}`);
    if (peer.allowedIps.length > 0) lines.push(`AllowedIPs = ${peer.allowedIps.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

function port(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new DataplaneError(`WireGuard port ${value} is not from 1 to 65535`);
  return value;
}

export class LinuxWireguard {
  constructor(
    private readonly runner: CommandRunner,
    private readonly startUserspace: StartUserspace = (device) => startWireguardGo(runner, device),
  ) {}

  async ensure(mtu: number): Promise<WireguardImplementation> {
    const implementation = (await this.existing()) ?? (await this.create());
    await this.runner.run('ip', ['-batch', '-'], `${batchLine`link set ${WIREGUARD_DEVICE} mtu ${mtu} up`}\n`);
    return implementation;
  }

  async sync(settings: WireguardSettings): Promise<void> {
    // Through /dev/stdin, so the private key is written to no file but the agent's own; behind
    // `cat |`, since Node's stdin to a child is a socket, which wg cannot open as /dev/stdin.
    await this.runner.run('sh', ['-c', 'cat | wg syncconf "$0" /dev/stdin', WIREGUARD_DEVICE], wireguardConfig(settings));
  }

  async remove(): Promise<void> {
    try {
      await this.runner.run('ip', ['link', 'del', 'dev', WIREGUARD_DEVICE]);
    } catch (err) {
      if (!(err instanceof CommandError && err.stderr.includes('Cannot find device'))) throw err;
    }
    // A wireguard-go ends with its device, removing its control socket as it goes: wait for that,
    // or it would take the socket of the next one started for the same name.
    await untilNoneAnswers(this.runner, WIREGUARD_DEVICE);
  }

  /** The implementation behind an existing device (a restart), or undefined when there is none. */
  private async existing(): Promise<WireguardImplementation | undefined> {
    let shown: KernelLinkKind[];
    try {
      shown = parseJson<KernelLinkKind>(await this.runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', WIREGUARD_DEVICE]), 'ip link');
    } catch (err) {
      if (err instanceof CommandError && err.stderr.includes('does not exist')) return undefined;
      throw err;
    }
    const kind = shown[0]?.linkinfo?.info_kind;
    if (kind === 'wireguard') return 'kernel';
    if (kind === 'tun') {
      // A TUN device of that name is wireguard-go's only if its socket answers.
      await this.runner.run('wg', ['show', WIREGUARD_DEVICE, 'listen-port']).catch((err: unknown) => {
        throw new DataplaneError(`${WIREGUARD_DEVICE} is a TUN device but no wireguard-go answers for it: ${(err as Error).message}`);
      });
      return 'wireguard-go';
    }
    throw new DataplaneError(`${WIREGUARD_DEVICE} exists but is a ${kind ?? 'device of unknown kind'}, not WireGuard: delete it`);
  }

  private async create(): Promise<WireguardImplementation> {
    try {
      await this.runner.run('ip', ['link', 'add', WIREGUARD_DEVICE, 'type', 'wireguard']);
      return 'kernel';
    } catch (err) {
      // "Unknown device type" or "Operation not supported": no module, so userspace.
      if (!(err instanceof CommandError && /Unknown device type|not supported/i.test(err.stderr))) throw err;
    }
    await this.startUserspace(WIREGUARD_DEVICE);
    return 'wireguard-go';
  }
}

/**
 * Starts `wireguard-go -f DEVICE` in its own session with no pipes to the
 * agent (a Go program writing to a closed pipe dies), and waits until `wg`
 * reaches it.
 */
async function startWireguardGo(runner: CommandRunner, device: string): Promise<void> {
  // An earlier one still on its way out would answer `wg` below in the new one's place.
  await untilNoneAnswers(runner, device);
  const child = spawn('wireguard-go', ['-f', device], { detached: true, stdio: 'ignore' });
  let failure: string | undefined;
  child.on('error', (err: NodeJS.ErrnoException) => {
    failure =
      err.code === 'ENOENT'
        ? 'the kernel has no WireGuard module and wireguard-go is not installed (Debian: apt-get install wireguard-go wireguard-tools)'
        : `wireguard-go: ${err.message}`;
  });
  child.on('exit', (code, signal) => {
    failure ??= `wireguard-go exited (${signal ?? `exit ${code}`}) before its device was up: run \`wireguard-go -f ${device}\` by hand to see why`;
  });
  child.unref();
  const deadline = Date.now() + USERSPACE_START_TIMEOUT_MS;
  for (;;) {
    if (failure !== undefined) throw new DataplaneError(failure);
    try {
      await runner.run('wg', ['show', device, 'listen-port']);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new DataplaneError(`wireguard-go did not bring ${device} up within ${USERSPACE_START_TIMEOUT_MS / 1000}s: ${(err as Error).message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves once no wireguard-go answers for `device` (its device gone, it exits), or after the start timeout. */
async function untilNoneAnswers(runner: CommandRunner, device: string): Promise<void> {
  const deadline = Date.now() + USERSPACE_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const answers = await runner.run('wg', ['show', device, 'listen-port']).then(
      () => true,
      // No socket (or no such device): nobody answers, which is what is waited for.
      () => false,
    );
    if (!answers) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
