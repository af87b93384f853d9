import type { BlockRoute } from '../../../src/routing/routes';
import { generatePrivateKey, publicKeyOf } from '../../../src/encryption/keys';
import { WIREGUARD_CONTAINER_MTU, encryptRoutes, mismatchedNodes, wireguardMtu, wireguardPeers } from '../../../src/encryption/wireguard';
import type { BlockRecord, NodeRecord } from '../../../src/model';

const KEY = { h1: publicKeyOf(generatePrivateKey()), h2: publicKeyOf(generatePrivateKey()), h3: publicKeyOf(generatePrivateKey()) };

function node(name: keyof typeof KEY | 'plain', ip: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    name,
    ip,
    backend: 'auto',
    version: '0.1.0',
    lastSeen: '2026-01-01T00:00:00Z',
    ...(name !== 'plain' && { wireguard: { publicKey: KEY[name], port: 51820, implementation: 'wireguard-go' } }),
    ...extra,
  };
}
const nodes = (...list: NodeRecord[]): Map<string, NodeRecord> => new Map(list.map((n) => [n.name, n]));
const block = (owner: string, cidr: string): BlockRecord => ({ network: '10.96.0.0-16', block: cidr, node: owner });

describe('WireGuard peers from the cluster view', () => {
  const blocks = [block('h1', '10.96.0.0/26'), block('h2', '10.96.0.128/26'), block('h2', '10.96.0.64/26'), block('h3', '10.96.1.0/26')];

  it('makes every other encrypted node with blocks a peer, allowed exactly its own blocks, at its node IP and port', () => {
    const peers = wireguardPeers('h1', blocks, nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2'), node('h3', '10.0.0.3', { wireguard: { publicKey: KEY.h3, port: 51999, implementation: 'kernel' } })));
    expect(peers.sort((a, b) => a.endpoint.localeCompare(b.endpoint))).toEqual([
      { publicKey: KEY.h2, endpoint: '10.0.0.2:51820', allowedIps: ['10.96.0.128/26', '10.96.0.64/26'] },
      { publicKey: KEY.h3, endpoint: '10.0.0.3:51999', allowedIps: ['10.96.1.0/26'] },
    ]);
  });

  it('leaves out plain nodes, nodes without blocks, and a node reclaimed while dead (but not one back after it)', () => {
    const reclaimed = { at: '2026-01-02T00:00:00Z', by: 'h1' };
    const view = nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2', { reclaimed }), node('plain', '10.0.0.9'));
    const plainBlocks = [...blocks, block('plain', '10.96.2.0/26')];
    expect(wireguardPeers('h1', plainBlocks, view)).toEqual([]);
    expect(wireguardPeers('h1', [], nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2')))).toEqual([]);
    const back = nodes(node('h2', '10.0.0.2', { reclaimed: { ...reclaimed, fencedAt: '2026-01-03T00:00:00Z' } }));
    expect(wireguardPeers('h1', blocks, back).map((p) => p.publicKey)).toEqual([KEY.h2]);
  });

  it('gives the same peers for the same view, whatever the order blocks arrive in', () => {
    const view = nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2'), node('h3', '10.0.0.3'));
    expect(JSON.stringify(wireguardPeers('h1', [...blocks].reverse(), view))).toBe(JSON.stringify(wireguardPeers('h1', blocks, view)));
  });
});

describe('routes with encryption', () => {
  const planned: BlockRoute[] = [
    { kind: 'blackhole', block: '10.96.0.0/26' },
    { kind: 'host-gw', block: '10.96.0.64/26', via: '10.0.0.2' },
    { kind: 'host-gw', block: '10.96.1.0/26', via: '10.0.0.9' },
  ];
  const blocks = [block('h1', '10.96.0.0/26'), block('h2', '10.96.0.64/26'), block('plain', '10.96.1.0/26')];
  const view = nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2'), node('plain', '10.0.0.9'));

  it('with WireGuard: an encrypted peer\'s blocks through the device, a plain node\'s into a blackhole, its own as planned', () => {
    expect(encryptRoutes('h1', 'wireguard', planned, blocks, view)).toEqual([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'wireguard', block: '10.96.0.64/26' },
      { kind: 'blackhole', block: '10.96.1.0/26' },
    ]);
  });

  it('without: an encrypted node\'s blocks into a blackhole (never sent to it in the clear), plain ones as planned', () => {
    const plainView = nodes(node('h2', '10.0.0.2'), node('plain', '10.0.0.9'));
    expect(encryptRoutes('plain', 'none', planned, blocks, plainView)).toEqual([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'blackhole', block: '10.96.0.64/26' },
      { kind: 'host-gw', block: '10.96.1.0/26', via: '10.0.0.9' },
    ]);
  });

  it('with WireGuard, a block of a node reclaimed while dead goes nowhere in the clear', () => {
    const gone = nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2', { reclaimed: { at: '2026-01-02T00:00:00Z', by: 'h1' } }));
    expect(encryptRoutes('h1', 'wireguard', planned.slice(0, 2), blocks.slice(0, 2), gone)).toEqual([
      { kind: 'blackhole', block: '10.96.0.0/26' },
      { kind: 'blackhole', block: '10.96.0.64/26' },
    ]);
  });

  it('changes nothing in an all-plain cluster', () => {
    const allPlain = nodes({ ...node('plain', '10.0.0.9') }, { ...node('plain', '10.0.0.2'), name: 'h2' });
    expect(encryptRoutes('h1', 'none', planned, [block('h2', '10.96.0.64/26')], allPlain)).toEqual(planned);
  });
});

describe('the mixed-cluster rule', () => {
  it('names every other node whose encryption differs from this host\'s, and only those', () => {
    const view = nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2'), node('plain', '10.0.0.9'));
    expect(mismatchedNodes('h1', 'wireguard', view).map((n) => n.name)).toEqual(['plain']);
    expect(mismatchedNodes('plain', 'none', view).map((n) => n.name)).toEqual(['h1', 'h2']);
    expect(mismatchedNodes('h1', 'wireguard', nodes(node('h1', '10.0.0.1'), node('h2', '10.0.0.2')))).toEqual([]);
  });
});

describe('MTU with WireGuard', () => {
  it('leaves 60 bytes of a 1500-byte IPv4 underlay for the tunnel: outer IPv4 20, UDP 8, WireGuard header 16, tag 16', () => {
    expect(wireguardMtu(1500)).toBe(1440);
    expect(wireguardMtu(9000)).toBe(8940);
    expect(WIREGUARD_CONTAINER_MTU).toBe(1440);
  });
});

describe('WireGuard keys', () => {
  it('derives the public key as `wg pubkey` does', () => {
    // Computed with wireguard-tools: echo KEY | wg pubkey
    expect(publicKeyOf('8NovLpM56EqSVHRqUCeeC0TNLgJZvOLJTCXfY7z0mHw=')).toBe('lPO0oNQJuqTM25hc/tVOXCPe/EpfdJPC6Jw0N/TePnA=');
  });

  it('makes a different key each time, and refuses what is not one', () => {
    expect(generatePrivateKey()).not.toBe(generatePrivateKey());
    expect(() => publicKeyOf('not a key')).toThrow('not a WireGuard private key');
  });
});
