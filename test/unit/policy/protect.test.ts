import { controlPlane, type Resolver } from '../../../src/agent/control-plane';
import { protection } from '../../../src/policy/protect';

describe('the control plane from the configuration', () => {
  const resolve: Resolver = (host) => {
    const known: Record<string, string[]> = { 'etcd.example': ['192.0.2.100', '192.0.2.101'], '192.0.2.5': ['192.0.2.5'] };
    const addresses = known[host];
    return addresses === undefined ? Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`)) : Promise.resolve(addresses);
  };

  it('holds every address of every store endpoint, with its port, and what --protect adds', async () => {
    const plane = await controlPlane({ store: 'etcd://etcd.example:2379,192.0.2.5:12379,[2001:db8::1]:2379', protect: [{ address: '198.51.100.7' }] }, resolve);
    expect(plane).toEqual({
      store: [
        { address: '192.0.2.100', port: 2379 },
        { address: '192.0.2.101', port: 2379 },
        { address: '192.0.2.5', port: 12379 },
      ],
      extra: [{ address: '198.51.100.7' }],
      agentPorts: [],
    });
  });

  it('makes the metrics port an agent port, closed like Docker\'s', async () => {
    const plane = await controlPlane({ store: 'file:/var/lib/sluice/state.json', protect: [], metricsAddr: { port: 9453 } }, resolve);
    expect(plane.agentPorts).toEqual([9453]);
    expect(protection(plane, ['192.0.2.2'], '192.0.2.1').hostPorts).toEqual([2375, 2376, 9453]);
  });

  it('has no store endpoints with the file store, and fails when a store host does not resolve', async () => {
    expect((await controlPlane({ store: 'file:/var/lib/sluice/state.json', protect: [] }, resolve)).store).toEqual([]);
    await expect(controlPlane({ store: 'etcd://nowhere.example:2379', protect: [] }, resolve)).rejects.toThrow('ENOTFOUND nowhere.example');
  });
});

describe('what the compiler closes', () => {
  const plane = {
    store: [{ address: '192.0.2.100', port: 2379 }],
    extra: [{ address: '192.0.2.1', port: 8500 }, { address: '127.0.0.1', port: 9100 }, { address: '198.51.100.8', port: 8080 }, { address: '198.51.100.7' }],
    agentPorts: [9500],
  };

  it('closes the Docker API and agent ports on every node, this one included even before it is registered', () => {
    const { destinations } = protection(plane, ['192.0.2.2'], '192.0.2.1');
    for (const address of ['192.0.2.1', '192.0.2.2']) {
      expect(destinations).toEqual(expect.arrayContaining([2375, 2376, 9500].map((port) => ({ address, port }))));
    }
    expect(destinations).toEqual(expect.arrayContaining([...plane.store, ...plane.extra]));
  });

  it('closes on every address of this host the node ports, the store ports and --protect ports of this host, not those elsewhere', () => {
    expect(protection(plane, ['192.0.2.1', '192.0.2.2'], '192.0.2.1').hostPorts).toEqual([2375, 2376, 2379, 8500, 9100, 9500]);
  });
});
