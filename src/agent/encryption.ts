/**
 * The agent's part for encryption between hosts (`--encryption wireguard`):
 * this host's key (made on first start, kept 0600 beside the store's state),
 * the device, the peers and routes derived from the view (pure logic in
 * src/encryption/), the refusal of nodes whose encryption differs, and key
 * rotation. With `--encryption none` it only refuses encrypted nodes.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../config';
import type { Dataplane } from '../dataplane/dataplane';
import type { BlockRoute } from '../routing/routes';
import { WIREGUARD_DEVICE } from '../firewall/names';
import { generatePrivateKey, publicKeyOf } from '../encryption/keys';
import { encryptRoutes, mismatchedNodes, wireguardMtu, wireguardPeers } from '../encryption/wireguard';
import { BadRequestError } from '../errors';
import type { NodeRecord, WireguardNode } from '../model';
import type { ClusterView } from './view';

type Settings = Pick<AgentConfig, 'node' | 'nodeIp' | 'encryption' | 'wireguardPort' | 'wireguardKeyFile'>;

export class HostEncryption {
  private privateKey: string | undefined;
  private device: WireguardNode | undefined;
  /** What the last sync gave the device, so an unchanged view costs no process. */
  private applied: string | undefined;
  /** The refused nodes last said, so the refusal is said once per change. */
  private refused = '';

  constructor(
    private readonly settings: Settings,
    private readonly dataplane: Dataplane,
    /** Where a refusal is reported (the agent's log and `sluice status`). */
    private readonly problem: (what: string, message: string) => void,
  ) {}

  /** Loads or makes the key and brings the device up; without WireGuard, removes a device an earlier run left. */
  async start(): Promise<void> {
    if (this.settings.encryption !== 'wireguard') {
      await this.dataplane.removeWireguard();
      return;
    }
    this.privateKey = await loadOrCreateKey(this.settings.wireguardKeyFile);
    await this.ensureDevice();
    const { implementation, port, publicKey } = this.device!;
    console.error(`sluice agent: encryption: WireGuard (${implementation}) on ${WIREGUARD_DEVICE}, port ${port}, public key ${publicKey}`);
  }

  /** The node record's part: how peers reach this host's device. */
  recordFields(): Pick<NodeRecord, 'wireguard'> {
    return this.device ? { wireguard: this.device } : {};
  }

  /** The block routes with encryption's changes (see encryptRoutes); says which nodes are refused. */
  routes(view: ClusterView, planned: BlockRoute[]): BlockRoute[] {
    const { node, encryption } = this.settings;
    const refused = mismatchedNodes(node, encryption, view.nodes);
    const text = refused.map((n) => n.name).join(', ');
    if (text !== this.refused && text !== '') {
      this.problem(
        'encryption',
        `refusing traffic with node(s) ${refused.map((n) => `${n.name} (--encryption ${n.wireguard ? 'wireguard' : 'none'})`).join(', ')}: this host runs --encryption ${encryption}; every host of a cluster must run the same (their blocks are blackholed here)`,
      );
    }
    this.refused = text;
    return encryptRoutes(node, encryption, planned, view.blocks.values(), view.nodes);
  }

  /** Makes the device's peers match the view: every other encrypted node, allowed its own blocks. */
  async apply(view: ClusterView): Promise<void> {
    if (this.privateKey === undefined || this.device === undefined) return;
    const settings = { privateKey: this.privateKey, listenPort: this.device.port, peers: wireguardPeers(this.settings.node, view.blocks.values(), view.nodes) };
    const text = JSON.stringify(settings);
    if (text === this.applied) return;
    await this.dataplane.syncWireguard(settings);
    this.applied = text;
  }

  /** Periodic: the device may be gone (wireguard-go killed); bring it back and re-sync from scratch. */
  async resync(): Promise<void> {
    this.applied = undefined;
    if (this.privateKey !== undefined) await this.ensureDevice();
  }

  /**
   * A new key for this host: written to the key file, then onto the device
   * (peers, unchanged, keep their entries). The caller publishes the new
   * public key at once; until peers have it, handshakes fail, for about the
   * time the store takes to tell them plus one WireGuard handshake.
   */
  async rotate(): Promise<string> {
    if (this.device === undefined) throw new BadRequestError('this agent runs --encryption none: there is no WireGuard key to rotate');
    const privateKey = generatePrivateKey();
    await writeKey(this.settings.wireguardKeyFile, privateKey);
    this.privateKey = privateKey;
    this.device = { ...this.device, publicKey: publicKeyOf(privateKey) };
    this.applied = undefined;
    return this.device.publicKey;
  }

  private async ensureDevice(): Promise<void> {
    const mtu = wireguardMtu(await this.dataplane.mtuTowards(this.settings.nodeIp));
    const implementation = await this.dataplane.ensureWireguard(mtu);
    this.device = { publicKey: publicKeyOf(this.privateKey!), port: this.settings.wireguardPort, implementation };
  }
}

/** The key in `file`, or a new one written there (0600, its directory made if needed). */
async function loadOrCreateKey(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = generatePrivateKey();
    await writeKey(file, key);
    return key;
  }
  const key = text.trim();
  try {
    publicKeyOf(key);
  } catch {
    throw new BadRequestError(`--wireguard-key-file ${file} holds no WireGuard private key (base64 of 32 bytes, as \`wg genkey\` prints): fix or delete it`);
  }
  return key;
}

/** Written whole or not at all (rename), never readable by others even for a moment. */
async function writeKey(file: string, key: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.new`;
  await writeFile(temporary, `${key}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600); // an older file of that name kept its mode
  await rename(temporary, file);
}
