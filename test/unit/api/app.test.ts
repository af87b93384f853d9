/**
 * The plugin app over real HTTP on a temp Unix socket, with recording fake
 * services. Requests are shaped like dockerd 20.10.24's: no Content-Type,
 * empty bodies for argument-less calls, a trailing newline, null maps.
 */
import { buildApp } from '../../../src/api/app';
import type { ApiLog } from '../../../src/api/app';
import {
  BadRequestError,
  ConflictError,
  DataplaneError,
  ExhaustedError,
  NotFoundError,
  NotSupportedError,
  PolicyError,
  SluiceError,
  StoreUnavailableError,
} from '../../../src/errors';
import { FakeIpamService, FakeNetworkService, goJson, send, serve } from './harness';
import type { Reply } from './harness';

const NET = '1720a8f3c0b1d2e3f40516273849aabbccddeeff00112233445566778899aabb';
const EP = '54ae0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f';
const POOL = '10.77.0.0-16';
const PORTMAP = 'com.docker.network.portmap';
const EXPOSED = 'com.docker.network.endpoint.exposedports';

let network: FakeNetworkService;
let ipam: FakeIpamService;
let debugLines: string[];
let errorLogs: { message: string; err: unknown }[];
let server: Awaited<ReturnType<typeof serve>>;

beforeEach(async () => {
  network = new FakeNetworkService();
  ipam = new FakeIpamService();
  debugLines = [];
  errorLogs = [];
  const log: ApiLog = {
    debug: (message) => debugLines.push(message),
    error: (message, err) => errorLogs.push({ message, err }),
  };
  server = await serve(buildApp({ network, ipam, log }));
});

afterEach(() => server.close());

function call(method: string, body = ''): Promise<Reply> {
  return send(server.socketPath, `/${method}`, body);
}

/** A 200 with a JSON body equal to `expected`, as the exact text (no extra keys, exact casing). */
function expectOk(reply: Reply, expected: unknown): void {
  expect(reply.status).toBe(200);
  expect(reply.headers['content-type']).toMatch(/^application\/vnd\.docker\.plugins\.v1\+json/);
  expect(reply.json).toEqual(expected);
  expect(reply.text).toBe(JSON.stringify(expected));
}

function noServiceCalls(): void {
  expect(network.calls).toEqual([]);
  expect(ipam.calls).toEqual([]);
}

describe('handshake (argument-less calls, empty body)', () => {
  it('Plugin.Activate implements both drivers', async () => {
    expectOk(await call('Plugin.Activate'), { Implements: ['NetworkDriver', 'IpamDriver'] });
    noServiceCalls();
  });

  it('NetworkDriver.GetCapabilities is local scope, global connectivity', async () => {
    expectOk(await call('NetworkDriver.GetCapabilities'), { Scope: 'local', ConnectivityScope: 'global' });
  });

  it('IpamDriver.GetCapabilities asks for neither MACs nor replay', async () => {
    expectOk(await call('IpamDriver.GetCapabilities'), { RequiresMACAddress: false, RequiresRequestReplay: false });
  });

  it('IpamDriver.GetDefaultAddressSpaces names both spaces', async () => {
    expectOk(await call('IpamDriver.GetDefaultAddressSpaces'), {
      LocalDefaultAddressSpace: 'sluice-local',
      GlobalDefaultAddressSpace: 'sluice-global',
    });
    noServiceCalls();
  });

  it('also accepts a body sent with a JSON Content-Type (curl, other clients)', async () => {
    const reply = await send(server.socketPath, '/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: NET }), {
      headers: { 'Content-Type': 'application/json' },
    });
    expectOk(reply, {});
    expect(network.calls).toEqual([{ method: 'deleteNetwork', args: [NET] }]);
  });
});

describe('the session dockerd 20.10.24 was observed to send (protocol doc §9)', () => {
  it('decodes every request and encodes every reply', async () => {
    const emptyPorts = { [EXPOSED]: [], [PORTMAP]: [] };
    const trace: [string, unknown, unknown][] = [
      ['Plugin.Activate', undefined, { Implements: ['NetworkDriver', 'IpamDriver'] }],
      ['NetworkDriver.GetCapabilities', undefined, { Scope: 'local', ConnectivityScope: 'global' }],
      ['IpamDriver.GetCapabilities', undefined, { RequiresMACAddress: false, RequiresRequestReplay: false }],
      [
        'IpamDriver.GetDefaultAddressSpaces',
        undefined,
        { LocalDefaultAddressSpace: 'sluice-local', GlobalDefaultAddressSpace: 'sluice-global' },
      ],
      [
        'IpamDriver.RequestPool',
        { AddressSpace: 'sluice-local', Pool: '10.77.0.0/16', SubPool: '', Options: {}, V6: false },
        { PoolID: POOL, Pool: '10.77.0.0/16', Data: { 'com.docker.network.gateway': '10.77.0.1/16' } },
      ],
      [
        'IpamDriver.RequestAddress',
        { PoolID: POOL, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } },
        { Address: '10.77.0.12/16', Data: {} },
      ],
      [
        'NetworkDriver.CreateNetwork',
        {
          NetworkID: NET,
          Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { foo: 'bar' } },
          IPv4Data: [{ AddressSpace: 'sluice-local', Gateway: '10.77.0.1/16', Pool: '10.77.0.0/16' }],
          IPv6Data: [],
        },
        {},
      ],
      ['IpamDriver.RequestAddress', { PoolID: POOL, Address: '', Options: null }, { Address: '10.77.0.12/16', Data: {} }],
      [
        'NetworkDriver.CreateEndpoint',
        {
          NetworkID: NET,
          EndpointID: EP,
          Interface: { Address: '10.77.0.12/16', AddressIPv6: '', MacAddress: '' },
          Options: emptyPorts,
        },
        {},
      ],
      [
        'NetworkDriver.Join',
        { NetworkID: NET, EndpointID: EP, SandboxKey: '/run/docker/netns/cfdd06f0428c', Options: emptyPorts },
        {
          InterfaceName: { SrcName: 'slc1a2b3c4d5', DstPrefix: 'eth' },
          Gateway: '169.254.1.1',
          StaticRoutes: [{ Destination: '169.254.1.1/32', RouteType: 1, NextHop: '' }],
          DisableGatewayService: false,
        },
      ],
      ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP, Options: emptyPorts }, {}],
      ['NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: EP }, { Value: {} }],
      ['NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: EP }, { Value: {} }],
      ['NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET, EndpointID: EP }, {}],
      ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: EP }, {}],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP }, {}],
      ['IpamDriver.ReleaseAddress', { PoolID: POOL, Address: '10.77.0.12' }, {}],
      ['IpamDriver.ReleaseAddress', { PoolID: POOL, Address: '10.77.0.1' }, {}],
      ['IpamDriver.ReleasePool', { PoolID: POOL }, {}],
      ['NetworkDriver.DeleteNetwork', { NetworkID: NET }, {}],
    ];

    for (const [method, body, reply] of trace) {
      expectOk(await call(method, body === undefined ? '' : goJson(body)), reply);
    }

    expect(ipam.calls).toEqual([
      { method: 'requestPool', args: [{ pool: '10.77.0.0/16', options: {}, v6: false }] },
      { method: 'requestAddress', args: [{ poolId: POOL, requestType: 'com.docker.network.gateway' }] },
      { method: 'requestAddress', args: [{ poolId: POOL }] },
      { method: 'releaseAddress', args: [POOL, '10.77.0.12'] },
      { method: 'releaseAddress', args: [POOL, '10.77.0.1'] },
      { method: 'releasePool', args: [POOL] },
    ]);
    expect(network.calls).toEqual([
      {
        method: 'createNetwork',
        args: [
          {
            networkId: NET,
            generic: { foo: 'bar' },
            internal: false,
            ipv6: false,
            ipv4Data: [{ addressSpace: 'sluice-local', pool: '10.77.0.0/16', gateway: '10.77.0.1/16', auxAddresses: {} }],
            ipv6Data: [],
          },
        ],
      },
      {
        method: 'createEndpoint',
        args: [{ networkId: NET, endpointId: EP, address: '10.77.0.12/16', portMappings: [], driverOptions: {} }],
      },
      {
        method: 'join',
        args: [{ networkId: NET, endpointId: EP, sandboxKey: '/run/docker/netns/cfdd06f0428c', portMappings: [] }],
      },
      { method: 'programExternalConnectivity', args: [NET, EP, []] },
      { method: 'endpointOperInfo', args: [NET, EP] },
      { method: 'endpointOperInfo', args: [NET, EP] },
      { method: 'revokeExternalConnectivity', args: [NET, EP] },
      { method: 'leave', args: [NET, EP] },
      { method: 'deleteEndpoint', args: [NET, EP] },
      { method: 'deleteNetwork', args: [NET] },
    ]);
  });
});

describe('NetworkDriver.CreateNetwork', () => {
  it('decodes -o options, --internal, --ipv6 and both IPAM data lists', async () => {
    const body = {
      NetworkID: NET,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.generic': { 'sluice.network': 'blue', mtu: '1400' },
        'com.docker.network.internal': true,
      },
      IPv4Data: [
        {
          AddressSpace: 'sluice-local',
          Pool: '10.20.0.0/16',
          Gateway: '10.20.0.1/16',
          AuxAddresses: { host1: '10.20.0.2/16' },
        },
      ],
      IPv6Data: [{ AddressSpace: 'sluice-local', Pool: 'fd00::/64' }],
    };
    expectOk(await call('NetworkDriver.CreateNetwork', goJson(body)), {});
    expect(network.calls).toEqual([
      {
        method: 'createNetwork',
        args: [
          {
            networkId: NET,
            generic: { 'sluice.network': 'blue', mtu: '1400' },
            internal: true,
            ipv6: true,
            ipv4Data: [
              {
                addressSpace: 'sluice-local',
                pool: '10.20.0.0/16',
                gateway: '10.20.0.1/16',
                auxAddresses: { host1: '10.20.0.2/16' },
              },
            ],
            ipv6Data: [{ addressSpace: 'sluice-local', pool: 'fd00::/64', auxAddresses: {} }],
          },
        ],
      },
    ]);
  });

  it.each([
    ['null Options and data lists', { NetworkID: NET, Options: null, IPv4Data: null, IPv6Data: null }],
    ['a null generic map', { NetworkID: NET, Options: { 'com.docker.network.generic': null } }],
    ['no Options at all', { NetworkID: NET }],
  ])('treats %s as empty', async (_name, body) => {
    expectOk(await call('NetworkDriver.CreateNetwork', goJson(body)), {});
    expect(network.calls).toEqual([
      {
        method: 'createNetwork',
        args: [{ networkId: NET, generic: {}, internal: false, ipv6: false, ipv4Data: [], ipv6Data: [] }],
      },
    ]);
  });
});

describe('NetworkDriver.CreateEndpoint', () => {
  const base = {
    NetworkID: NET,
    EndpointID: EP,
    Interface: { Address: '10.77.0.12/16', AddressIPv6: '', MacAddress: '' },
  };

  it('decodes port mappings and keeps only --driver-opt keys as driver options', async () => {
    const body = {
      ...base,
      Options: {
        [EXPOSED]: [{ Proto: 6, Port: 80 }],
        [PORTMAP]: [
          { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
          { Proto: 17, IP: '10.77.0.12', Port: 53, HostIP: '127.0.0.1', HostPort: 5353, HostPortEnd: 5353 },
          { Proto: 132, IP: '', Port: 9000, HostIP: '', HostPort: 0, HostPortEnd: 0 },
        ],
        'com.docker.network.endpoint.dnsservers': ['1.1.1.1'],
        'com.docker.network.endpoint.macaddress': 'AkKsFAAF',
        'sluice.policy': 'web',
        'other.opt': 'x',
        'some.structured.thing': { not: 'a driver option' },
      },
    };
    expectOk(await call('NetworkDriver.CreateEndpoint', goJson(body)), {});
    expect(network.calls).toEqual([
      {
        method: 'createEndpoint',
        args: [
          {
            networkId: NET,
            endpointId: EP,
            address: '10.77.0.12/16',
            portMappings: [
              { proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 },
              { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPort: 5353, hostPortEnd: 5353 },
              { proto: 'sctp', containerPort: 9000, hostPort: 0, hostPortEnd: 0 },
            ],
            driverOptions: { 'sluice.policy': 'web', 'other.opt': 'x' },
          },
        ],
      },
    ]);
  });

  it('accepts a null Interface and null Options', async () => {
    expectOk(await call('NetworkDriver.CreateEndpoint', goJson({ NetworkID: NET, EndpointID: EP, Interface: null, Options: null })), {});
    const [recorded] = network.calls;
    expect(recorded?.args).toEqual([{ networkId: NET, endpointId: EP, portMappings: [], driverOptions: {} }]);
  });

  it('passes a --mac-address and --ip6 through', async () => {
    const body = {
      ...base,
      Interface: { Address: '10.77.0.12/16', AddressIPv6: 'fd00::c/64', MacAddress: '02:42:0a:4d:00:0c' },
      Options: {},
    };
    await call('NetworkDriver.CreateEndpoint', goJson(body));
    expect(network.calls[0]?.args[0]).toMatchObject({ addressIPv6: 'fd00::c/64', macAddress: '02:42:0a:4d:00:0c' });
  });

  it('returns the MAC the service chose when dockerd gave none', async () => {
    network.createEndpointResult = { macAddress: 'ee:ee:0a:4d:00:0c' };
    expectOk(await call('NetworkDriver.CreateEndpoint', goJson({ ...base, Options: {} })), {
      Interface: { MacAddress: 'ee:ee:0a:4d:00:0c' },
    });
  });

  it('never returns a MAC when dockerd gave one (libnetwork rejects modified fields)', async () => {
    network.createEndpointResult = { macAddress: '02:42:0a:4d:00:0c' };
    const body = { ...base, Interface: { ...base.Interface, MacAddress: '02:42:0a:4d:00:0c' }, Options: {} };
    expectOk(await call('NetworkDriver.CreateEndpoint', goJson(body)), {});
  });
});

describe('NetworkDriver.Join', () => {
  it('decodes the sandbox and port mappings and encodes interface, gateway and routes', async () => {
    network.joinResult = {
      srcName: 'slc54ae0c1d2',
      dstPrefix: 'eth',
      gateway: '169.254.1.1',
      staticRoutes: [
        { destination: '169.254.1.1/32', routeType: 1 },
        { destination: '192.168.0.0/16', routeType: 0, nextHop: '10.77.0.254' },
      ],
      disableGatewayService: true,
    };
    const body = {
      NetworkID: NET,
      EndpointID: EP,
      SandboxKey: '/var/run/docker/netns/1a2b3c4d5e6f',
      Options: {
        [EXPOSED]: [{ Proto: 6, Port: 80 }],
        [PORTMAP]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }],
        'com.docker.network.generic': { ParentEndpoints: [], ChildEndpoints: [] },
      },
    };
    expectOk(await call('NetworkDriver.Join', goJson(body)), {
      InterfaceName: { SrcName: 'slc54ae0c1d2', DstPrefix: 'eth' },
      Gateway: '169.254.1.1',
      StaticRoutes: [
        { Destination: '169.254.1.1/32', RouteType: 1, NextHop: '' },
        { Destination: '192.168.0.0/16', RouteType: 0, NextHop: '10.77.0.254' },
      ],
      DisableGatewayService: true,
    });
    expect(network.calls).toEqual([
      {
        method: 'join',
        args: [
          {
            networkId: NET,
            endpointId: EP,
            sandboxKey: '/var/run/docker/netns/1a2b3c4d5e6f',
            portMappings: [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }],
          },
        ],
      },
    ]);
  });

  it('accepts null Options', async () => {
    const reply = await call('NetworkDriver.Join', goJson({ NetworkID: NET, EndpointID: EP, SandboxKey: '/k', Options: null }));
    expect(reply.status).toBe(200);
    expect(network.calls[0]?.args[0]).toMatchObject({ portMappings: [] });
  });
});

describe('the other network driver calls', () => {
  it('EndpointOperInfo wraps the service map in Value', async () => {
    network.operInfo = { 'sluice.host_ifname': 'slc54ae0c1d2' };
    expectOk(await call('NetworkDriver.EndpointOperInfo', goJson({ NetworkID: NET, EndpointID: EP })), {
      Value: { 'sluice.host_ifname': 'slc54ae0c1d2' },
    });
  });

  it('ProgramExternalConnectivity passes the port mappings', async () => {
    const body = {
      NetworkID: NET,
      EndpointID: EP,
      Options: { [PORTMAP]: [{ Proto: 17, IP: '', Port: 53, HostIP: '0.0.0.0', HostPort: 53, HostPortEnd: 53 }] },
    };
    expectOk(await call('NetworkDriver.ProgramExternalConnectivity', goJson(body)), {});
    expect(network.calls).toEqual([
      {
        method: 'programExternalConnectivity',
        args: [NET, EP, [{ proto: 'udp', containerPort: 53, hostIp: '0.0.0.0', hostPort: 53, hostPortEnd: 53 }]],
      },
    ]);
  });

  it.each([
    ['NetworkDriver.DeleteEndpoint', 'deleteEndpoint'],
    ['NetworkDriver.Leave', 'leave'],
    ['NetworkDriver.RevokeExternalConnectivity', 'revokeExternalConnectivity'],
  ])('%s calls %s with both IDs', async (method, serviceMethod) => {
    expectOk(await call(method, goJson({ NetworkID: NET, EndpointID: EP })), {});
    expect(network.calls).toEqual([{ method: serviceMethod, args: [NET, EP] }]);
  });

  it.each(['NetworkDriver.DiscoverNew', 'NetworkDriver.DiscoverDelete'])('%s is a harmless no-op', async (method) => {
    const body = { DiscoveryType: 1, DiscoveryData: { Address: '10.0.0.1', BindAddress: '10.0.0.1', Self: true } };
    expectOk(await call(method, goJson(body)), {});
    noServiceCalls();
  });
});

describe('IPAM calls', () => {
  it('RequestPool decodes --subnet, --ip-range, --ipam-opt and V6', async () => {
    const body = {
      AddressSpace: 'sluice-global',
      Pool: '10.20.0.0/16',
      SubPool: '10.20.5.0/24',
      Options: { 'sluice.network': 'blue' },
      V6: true,
    };
    expectOk(await call('IpamDriver.RequestPool', goJson(body)), {
      PoolID: POOL,
      Pool: '10.77.0.0/16',
      Data: { 'com.docker.network.gateway': '10.77.0.1/16' },
    });
    expect(ipam.calls).toEqual([
      {
        method: 'requestPool',
        args: [{ pool: '10.20.0.0/16', subPool: '10.20.5.0/24', options: { 'sluice.network': 'blue' }, v6: true }],
      },
    ]);
  });

  it('RequestPool without --subnet and with null Options asks for any pool', async () => {
    ipam.poolResult = { poolId: 'p2', pool: '10.96.0.0/16', data: {} };
    const reply = await call('IpamDriver.RequestPool', goJson({ AddressSpace: 'sluice-local', Pool: '', SubPool: '', Options: null, V6: false }));
    expectOk(reply, { PoolID: 'p2', Pool: '10.96.0.0/16', Data: {} });
    expect(ipam.calls).toEqual([{ method: 'requestPool', args: [{ options: {}, v6: false }] }]);
  });

  it('RequestAddress decodes an --aux-address / --ip request (Address set, null Options)', async () => {
    ipam.addressResult = { address: '10.77.0.2/16' };
    expectOk(await call('IpamDriver.RequestAddress', goJson({ PoolID: POOL, Address: '10.77.0.2', Options: null })), {
      Address: '10.77.0.2/16',
      Data: {},
    });
    expect(ipam.calls).toEqual([{ method: 'requestAddress', args: [{ poolId: POOL, address: '10.77.0.2' }] }]);
  });

  it('RequestAddress ignores the MAC dockerd would add if it required one', async () => {
    const body = { PoolID: POOL, Address: '', Options: { 'com.docker.network.endpoint.macaddress': '02:42:ac:11:00:02' } };
    await call('IpamDriver.RequestAddress', goJson(body));
    expect(ipam.calls).toEqual([{ method: 'requestAddress', args: [{ poolId: POOL }] }]);
  });
});

describe('not implemented → 404 {"Err"}', () => {
  it.each([
    ['NetworkDriver.AllocateNetwork', goJson({ NetworkID: NET, Options: {}, IPv4Data: [], IPv6Data: [] })],
    ['NetworkDriver.FreeNetwork', goJson({ NetworkID: NET })],
    ['NetworkDriver.GwAllocCheck', ''],
    ['Unknown.Method', ''],
  ])('%s', async (method, body) => {
    const reply = await call(method, body);
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toMatch(/^application\/vnd\.docker\.plugins\.v1\+json/);
    expect(reply.json).toEqual({ Err: `${method} not implemented` });
    noServiceCalls();
  });

  it('a known method with a verb other than POST', async () => {
    const reply = await send(server.socketPath, '/Plugin.Activate', '', { method: 'GET' });
    expect(reply.status).toBe(404);
    expect(reply.json).toEqual({ Err: 'Plugin.Activate not implemented' });
  });
});

describe('bad requests → 400 {"Err"} naming the method and field, no service call', () => {
  it('malformed JSON', async () => {
    const reply = await call('NetworkDriver.CreateNetwork', '{"NetworkID": "abc",\n');
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual({ Err: expect.stringMatching(/^malformed JSON in NetworkDriver\.CreateNetwork request: \S/) });
    noServiceCalls();
  });

  it.each<[string, unknown, string]>([
    ['NetworkDriver.CreateNetwork', undefined, 'CreateNetwork: request body is empty'],
    ['NetworkDriver.CreateNetwork', null, 'CreateNetwork: request body must be a JSON object, got null'],
    ['NetworkDriver.CreateNetwork', [NET], 'CreateNetwork: request body must be a JSON object, got list'],
    ['NetworkDriver.CreateNetwork', { Options: {} }, 'CreateNetwork: NetworkID is missing'],
    ['NetworkDriver.CreateNetwork', { NetworkID: 7 }, 'CreateNetwork: NetworkID must be a string, got number'],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, Options: [] }, 'CreateNetwork: Options must be an object, got list'],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, Options: { 'com.docker.network.generic': { mtu: 1400 } } },
      'CreateNetwork: Options["com.docker.network.generic"].mtu must be a string, got number',
    ],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, Options: { 'com.docker.network.internal': 'true' } },
      'CreateNetwork: Options["com.docker.network.internal"] must be a boolean, got string',
    ],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, IPv4Data: {} }, 'CreateNetwork: IPv4Data must be a list, got object'],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, IPv4Data: [{ AddressSpace: 'sluice-local' }] },
      'CreateNetwork: IPv4Data[0].Pool is missing',
    ],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, IPv6Data: ['fd00::/64'] }, 'CreateNetwork: IPv6Data[0] must be an object, got string'],
    ['NetworkDriver.DeleteNetwork', { NetworkID: '' }, 'DeleteNetwork: NetworkID is empty'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: NET }, 'CreateEndpoint: EndpointID is missing'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: null }, 'CreateEndpoint: EndpointID is missing'],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Interface: { Address: 10 } },
      'CreateEndpoint: Interface.Address must be a string, got number',
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Options: { [PORTMAP]: [{ Proto: 1, Port: 80, HostPort: 80, HostPortEnd: 80 }] } },
      'CreateEndpoint: Options["com.docker.network.portmap"][0].Proto must be 6 (tcp), 17 (udp) or 132 (sctp), got 1',
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Options: { [PORTMAP]: [{ Proto: 6, Port: 70000, HostPort: 80, HostPortEnd: 80 }] } },
      'CreateEndpoint: Options["com.docker.network.portmap"][0].Port must be a port number (1-65535), got 70000',
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Options: { [PORTMAP]: [{ Port: 80, HostPort: 80, HostPortEnd: 80 }] } },
      'CreateEndpoint: Options["com.docker.network.portmap"][0].Proto is missing',
    ],
    ['NetworkDriver.Join', { NetworkID: NET, EndpointID: EP }, 'Join: SandboxKey is missing'],
    [
      'NetworkDriver.Join',
      { NetworkID: NET, EndpointID: EP, SandboxKey: '/k', Options: { [PORTMAP]: {} } },
      'Join: Options["com.docker.network.portmap"] must be a list, got object',
    ],
    ['NetworkDriver.EndpointOperInfo', { NetworkID: NET }, 'EndpointOperInfo: EndpointID is missing'],
    ['NetworkDriver.DeleteEndpoint', { EndpointID: EP }, 'DeleteEndpoint: NetworkID is missing'],
    ['NetworkDriver.Leave', { NetworkID: NET }, 'Leave: EndpointID is missing'],
    ['NetworkDriver.ProgramExternalConnectivity', { EndpointID: EP }, 'ProgramExternalConnectivity: NetworkID is missing'],
    ['NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET }, 'RevokeExternalConnectivity: EndpointID is missing'],
    ['IpamDriver.RequestPool', { Pool: '', V6: 'false' }, 'RequestPool: V6 must be a boolean, got string'],
    ['IpamDriver.RequestPool', { Options: { k: null } }, 'RequestPool: Options.k is missing'],
    ['IpamDriver.ReleasePool', {}, 'ReleasePool: PoolID is missing'],
    ['IpamDriver.RequestAddress', { Address: '' }, 'RequestAddress: PoolID is missing'],
    [
      'IpamDriver.RequestAddress',
      { PoolID: POOL, Options: { RequestAddressType: 1 } },
      'RequestAddress: Options.RequestAddressType must be a string, got number',
    ],
    ['IpamDriver.ReleaseAddress', { PoolID: POOL, Address: '' }, 'ReleaseAddress: Address is empty'],
  ])('%s %j', async (method, body, message) => {
    const reply = await call(method, body === undefined ? '' : goJson(body));
    expect(reply.status).toBe(400);
    expect(reply.json).toEqual({ Err: message });
    noServiceCalls();
  });

  it("body-parser's own client errors keep their status (here an unknown Content-Encoding)", async () => {
    const reply = await send(server.socketPath, '/NetworkDriver.DeleteNetwork', goJson({ NetworkID: NET }), {
      headers: { 'Content-Encoding': 'x-unknown' },
    });
    expect(reply.status).toBe(415);
    expect(reply.json).toEqual({ Err: 'NetworkDriver.DeleteNetwork request: unsupported content encoding "x-unknown"' });
    expect(errorLogs).toEqual([]);
    noServiceCalls();
  });
});

class StatusTwoHundredError extends SluiceError {
  readonly code = 'odd';
  override readonly httpStatus = 200;
}

describe('service failures → their status, never 200, with {"Err": message}', () => {
  const cases: [SluiceError, number][] = [
    [new BadRequestError('subnet 10.0.0.0/33 is not a CIDR'), 400],
    [new NotFoundError('network 10.9.0.0/16 is not known'), 404],
    [new ConflictError('10.77.0.0/16 overlaps 10.77.0.0/20'), 409],
    [new ExhaustedError('no free block left in 10.96.0.0/12'), 507],
    [new NotSupportedError('IPv6 is not supported'), 501],
    [new StoreUnavailableError('etcd at 127.0.0.1:2379 did not answer in 5 s'), 503],
    [new DataplaneError('ip link add failed: File exists'), 500],
    [new PolicyError('policy web: bad selector'), 400],
    [new StatusTwoHundredError('must not look like success'), 500],
  ];
  it.each(cases.map(([err, status]) => [err.name, status, err] as const))('%s → %d', async (_name, status, err) => {
    network.failNext('createEndpoint', err);
    const reply = await call(
      'NetworkDriver.CreateEndpoint',
      goJson({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.77.0.12/16' }, Options: {} }),
    );
    expect(reply.status).toBe(status);
    expect(reply.headers['content-type']).toMatch(/^application\/vnd\.docker\.plugins\.v1\+json/);
    expect(reply.json).toEqual({ Err: err.message });
    expect(errorLogs).toEqual([]);
  });

  it('IPAM failures are non-200 too (a 200 {"Err"} would read as success to libnetwork)', async () => {
    ipam.failNext('requestAddress', new ExhaustedError('pool 10.77.0.0/16 is full'));
    const reply = await call('IpamDriver.RequestAddress', goJson({ PoolID: POOL, Address: '', Options: null }));
    expect(reply.status).toBe(507);
    expect(reply.json).toEqual({ Err: 'pool 10.77.0.0/16 is full' });
  });

  it('an unexpected error is a logged 500 "internal error", and the app keeps serving', async () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'ino')");
    network.failNext('join', bug);
    const reply = await call('NetworkDriver.Join', goJson({ NetworkID: NET, EndpointID: EP, SandboxKey: '/k', Options: null }));
    expect(reply.status).toBe(500);
    expect(reply.json).toEqual({ Err: `internal error: ${bug.message}` });
    expect(errorLogs).toEqual([{ message: expect.stringContaining('/NetworkDriver.Join'), err: bug }]);

    expectOk(await call('Plugin.Activate'), { Implements: ['NetworkDriver', 'IpamDriver'] });
  });
});

describe('debug trace', () => {
  it('logs each request body and each reply with its status and duration', async () => {
    await call('NetworkDriver.Leave', goJson({ NetworkID: NET, EndpointID: EP }));
    await call('NetworkDriver.FreeNetwork', goJson({ NetworkID: NET }));
    expect(debugLines).toEqual([
      `POST /NetworkDriver.Leave <- ${JSON.stringify({ NetworkID: NET, EndpointID: EP })}`,
      expect.stringMatching(/^POST \/NetworkDriver\.Leave -> 200 in \d+\.\d ms: \{\}$/),
      `POST /NetworkDriver.FreeNetwork <- ${JSON.stringify({ NetworkID: NET })}`,
      expect.stringMatching(/^POST \/NetworkDriver\.FreeNetwork -> 404 in \d+\.\d ms: \{"Err":"NetworkDriver\.FreeNetwork not implemented"\}$/),
    ]);
  });

  it('shows an empty body as such', async () => {
    await call('Plugin.Activate');
    expect(debugLines[0]).toBe('POST /Plugin.Activate <- (empty body)');
  });
});
