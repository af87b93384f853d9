import type { NameServer } from '../../../src/agent/agent';
import { buildNameIndex } from '../../../src/dns/answer';
import type { NameSource } from '../../../src/dns/server';
import type { ContainerIdentity } from '../../../src/labels/docker';
import { INPUT_CHAIN } from '../../../src/firewall/names';
import { MemoryStore } from '../../../src/store/memory-store';
import { createDockerNetwork, eventually, testHost, type TestHost } from '../../helpers/host';

const SUBNET = '10.96.0.0/16';
const NET = 'n'.repeat(64);
const DNS_ADDRESS = '169.254.53.53';

/** A name server that indexes what the agent gives it at each update (the resolver caches its index until the next one). */
class RecordingNameServer implements NameServer {
  private index = buildNameIndex([], []);
  closed = false;

  update(source: NameSource): void {
    this.index = buildNameIndex(source.networks.values(), source.endpoints.values());
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** The addresses `name` has on the network, as the resolver would answer them. */
  lookup(name: string): string[] {
    return [...(this.index.names.get('10.96.0.0-16')?.get(name) ?? [])];
  }
}

describe('Agent: names', () => {
  let store: MemoryStore;
  let hosts: TestHost[];

  beforeEach(() => {
    store = new MemoryStore();
    hosts = [];
  });
  afterEach(async () => {
    for (const host of hosts) await host.agent.stop();
    await store.close();
  });

  /** A host whose agent serves names; `onStart` sees the host as it is when the server starts. */
  async function start(name: string, ip: string, onStart: (host: TestHost) => void = () => undefined): Promise<{ host: TestHost; names: RecordingNameServer }> {
    const names = new RecordingNameServer();
    const host: TestHost = testHost(store, name, ip, {
      startNames: (address) => {
        expect(address).toBe(DNS_ADDRESS);
        onStart(host);
        return Promise.resolve(names);
      },
    });
    hosts.push(host);
    await host.agent.start();
    return { host, names };
  }

  /** Docker's calls for `docker run --net …` of `identity` on `host`; returns its address. */
  async function run(host: TestHost, poolId: string, endpointId: string, identity: ContainerIdentity): Promise<string> {
    const { address } = await host.ipam.requestAddress({ poolId });
    host.docker.run(NET, endpointId, identity);
    await host.driver.createEndpoint({ networkId: NET, endpointId, address, portMappings: [], driverOptions: {} });
    await host.driver.join({ networkId: NET, endpointId, sandboxKey: '/var/run/docker/netns/x', portMappings: [] });
    return address.split('/')[0]!;
  }

  it('starts serving once its address is on the host, and opens DNS to it in the firewall', async () => {
    let addressOnHost = false;
    const { host, names } = await start('h1', '192.0.2.1', (h) => (addressOnHost = h.dataplane.gateways.has(DNS_ADDRESS)));
    expect(addressOnHost).toBe(true);
    const input = host.dataplane.firewall.filter.find((c) => c.name === INPUT_CHAIN)!.rules;
    const dns = input.filter((r) => r.action.kind === 'ACCEPT' && r.matches.some((m) => m.kind === 'destination' && m.address === DNS_ADDRESS));
    expect(dns.flatMap((r) => r.matches.filter((m) => m.kind === 'destination-port'))).toEqual(Array(2).fill({ kind: 'destination-port', ports: { first: 53, last: 53 } }));
    await host.agent.stop();
    expect(names.closed).toBe(true);
  });

  it('keeps the address on the host beside the gateways', async () => {
    const { host } = await start('h1', '192.0.2.1');
    await createDockerNetwork(host, NET, SUBNET);
    await eventually(() => expect([...host.dataplane.gateways].sort()).toEqual(['10.96.0.1', DNS_ADDRESS]));
  });

  it('fails to start with the name server\'s error, e.g. when the address is taken', async () => {
    const host = testHost(store, 'h1', '192.0.2.1', { startNames: () => Promise.reject(new Error('cannot serve DNS on 169.254.53.53:53/udp: another process is using it')) });
    hosts.push(host);
    await expect(host.agent.start()).rejects.toThrow('another process is using it');
  });

  it('gives every host the names and aliases of a container started on one, once it runs, and forgets them when it goes', async () => {
    const { host: h1 } = await start('h1', '192.0.2.1');
    const { names: names2 } = await start('h2', '192.0.2.2');
    const poolId = await createDockerNetwork(h1, NET, SUBNET);
    const endpointId = 'e1'.repeat(32);
    const address = await run(h1, poolId, endpointId, { containerId: 'c1', containerName: 'web1', labels: {} });
    h1.docker.names.set('c1', { name: 'web1', aliases: new Map([[NET, ['frontend']]]) });
    h1.docker.emit({ kind: 'container', action: 'start', containerId: 'c1', name: 'web1', labels: {} });
    await eventually(() => expect({ web1: names2.lookup('web1'), frontend: names2.lookup('frontend') }).toEqual({ web1: [address], frontend: [address] }));
    await h1.driver.leave(NET, endpointId);
    await h1.driver.deleteEndpoint(NET, endpointId);
    await eventually(() => expect(names2.lookup('web1')).toEqual([]));
  });

  it('follows a container renamed in Docker', async () => {
    const { host: h1 } = await start('h1', '192.0.2.1');
    const { names: names2 } = await start('h2', '192.0.2.2');
    const poolId = await createDockerNetwork(h1, NET, SUBNET);
    const endpointId = 'e1'.repeat(32);
    const address = await run(h1, poolId, endpointId, { containerId: 'c1', containerName: 'web1', labels: {} });
    await eventually(() => expect(names2.lookup('web1')).toEqual([address]));
    h1.docker.names.set('c1', { name: 'web-renamed', aliases: new Map() });
    h1.docker.emit({ kind: 'container', action: 'rename', containerId: 'c1', name: 'web-renamed', labels: {} });
    await eventually(() => expect({ old: names2.lookup('web1'), renamed: names2.lookup('web-renamed') }).toEqual({ old: [], renamed: [address] }));
  });
});
