/**
 * Every plugin method against the real driver and IPAM (memory store,
 * recording dataplane), over HTTP as dockerd sends it: an invalid request is
 * answered non-200 `{"Err"}` and changes nothing in the store or the
 * dataplane. Random invalid requests come from a seeded generator (the seed
 * is in the test name, so a failure replays); the exact inputs are
 * named regression cases, each next to a positive control.
 */
import { buildApp } from '../../../src/api/app';
import type { DataplaneMethod } from '../../../src/dataplane/fake/recording-dataplane';
import { MemoryStore } from '../../../src/store/memory-store';
import { ROOT } from '../../../src/store/keys';
import { testHost, type TestHost } from '../../helpers/host';
import { goJson, send, serve, type Reply } from './harness';
import { renderedRules } from '../../helpers/firewall-text';

const NET = '1720a8f3c0b1d2e3f40516273849aabbccddeeff00112233445566778899aabb';
const LIVE = '54ae0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f';
const FRESH = 'c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc';
/** Shares its first 11 hex digits, and so its veth name, with LIVE. */
const LIVE_PREFIX_TWIN = `${LIVE.slice(0, 11)}${'0'.repeat(53)}`;
const POOL = '10.96.0.0-16';
const SUBNET = '10.96.0.0/16';
const PORTMAP = 'com.docker.network.portmap';
const SANDBOX = '/var/run/docker/netns/cfdd06f0428c';

const MUTATING: ReadonlySet<DataplaneMethod> = new Set(['addEndpoint', 'removeEndpoint', 'syncGateways', 'syncRoutes', 'applyFirewall', 'ensureVxlan']);

let store: MemoryStore;
let host: TestHost;
let server: Awaited<ReturnType<typeof serve>>;
let liveAddress: string;
/** Allocated to this node and held by no endpoint: what the next CreateEndpoint would get. */
let spareAddress: string;

function call(method: string, body: unknown): Promise<Reply> {
  return send(server.socketPath, `/${method}`, goJson(body));
}

async function ok(method: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = await call(method, body);
  expect({ method, status: reply.status, json: reply.json }).toMatchObject({ status: 200 });
  return reply.json as Record<string, unknown>;
}

async function requestAddress(): Promise<string> {
  return (await ok('IpamDriver.RequestAddress', { PoolID: POOL, Address: '', Options: null })).Address as string;
}

function createEndpointBody(endpointId: string, address: string, extra: Record<string, unknown> = {}): unknown {
  return { NetworkID: NET, EndpointID: endpointId, Interface: { Address: address, AddressIPv6: '', MacAddress: '', ...extra }, Options: null };
}

/** Everything a request could have changed: the whole store, the dataplane's state and its mutating calls. */
async function snapshot(): Promise<unknown> {
  const { kvs } = await host.registry.store.list(ROOT);
  const dp = host.dataplane;
  return {
    store: kvs.map((kv) => [kv.key, kv.value, kv.modRevision]),
    endpoints: [...dp.endpoints],
    gateways: [...dp.gateways],
    routes: [...dp.routes],
    firewall: structuredClone(dp.firewall),
    mutations: dp.calls.filter((c) => MUTATING.has(c.method)).length,
  };
}

/** The request is refused with a non-200 `{"Err": message}` and nothing changed. */
async function expectRefused(method: string, body: unknown, message?: RegExp): Promise<void> {
  const before = await snapshot();
  const reply = await call(method, body);
  expect({ method, body, status: reply.status === 200 ? 200 : 'non-200', keys: Object.keys(reply.json ?? {}) }).toEqual({
    method,
    body,
    status: 'non-200',
    keys: ['Err'],
  });
  const err = (reply.json as { Err: unknown }).Err;
  expect(typeof err === 'string' && err.length > 0).toBe(true);
  if (message) expect(err).toMatch(message);
  expect(await snapshot()).toEqual(before);
}

beforeEach(async () => {
  store = new MemoryStore();
  host = testHost(store, 'h1', '192.0.2.1');
  await host.agent.start();
  server = await serve(buildApp({ network: host.driver, ipam: host.ipam }));
  // docker network create, then docker run: one live endpoint with a published port.
  await ok('IpamDriver.RequestPool', { AddressSpace: 'sluice-local', Pool: SUBNET, SubPool: '', Options: {}, V6: false });
  host.docker.addNetwork(NET, 'appnet', SUBNET);
  await ok('NetworkDriver.CreateNetwork', {
    NetworkID: NET,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'sluice-local', Pool: SUBNET, Gateway: '10.96.0.1/16' }],
    IPv6Data: [],
  });
  liveAddress = await requestAddress();
  host.docker.run(NET, LIVE, { containerId: 'c1', containerName: 'web', labels: { role: 'web' } });
  await ok('NetworkDriver.CreateEndpoint', createEndpointBody(LIVE, liveAddress));
  const ports = { [PORTMAP]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }] };
  await ok('NetworkDriver.Join', { NetworkID: NET, EndpointID: LIVE, SandboxKey: SANDBOX, Options: ports });
  spareAddress = await requestAddress();
});

afterEach(async () => {
  await server.close();
  await host.agent.stop();
  await store.close();
});

// ---- generators ---------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly next: () => number) {}
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
}

/** Characters that split a line or an argument somewhere, or that no field's form allows. */
const SEPARATORS = ['\n', '\r', '\0', '"', "'", ' ', '\t', '\\', ';', '`', '$(', '\u2028', '%0a'];
/** Values of the wrong JSON type for string fields, and for number fields. */
const NOT_STRINGS: unknown[] = [42, true, {}, [], ['x'], { a: 1 }];
const NOT_NUMBERS: unknown[] = ['80', 'x', true, {}, [], [80]];

/** What a field must be; each kind knows values that are not that. */
type Kind = 'dockerId' | 'poolId' | 'cidr4' | 'ip4' | 'hostIp' | 'mac' | 'sandboxKey' | 'port' | 'hostPort' | 'proto';

const KIND_SPECIFIC: Record<Kind, unknown[]> = {
  dockerId: [LIVE.slice(0, 12), LIVE.toUpperCase(), `${LIVE}0`, 'g'.repeat(64), 'n1'],
  poolId: ['sluice/10.96.0.0-16', '10.96.0.0/16', '10.96.0.1-16', '10.96.0.0-33', '../10.96.0.0-16', 'p1'],
  cidr4: ['10.96.0.5', '10.96.0.5/33', '10.96.0.256/16', '10.96.0.5/16/1', '010.96.0.5/16', 'fd00::5/64x'],
  ip4: ['10.96.0.5/16', '10.96.0.256', '1.2.3', 'fd00::5', 'localhost'],
  hostIp: ['not-an-ip', '1.2.3', '1.2.3.4/32', '256.1.1.1', '::1/128', 'localhost'],
  mac: ['02:42:0a:60:00', '02:42:0a:60:00:05:07', 'zz:42:0a:60:00:05', '0242.0a60.0005', 'AkKsFAAF'],
  sandboxKey: ['var/run/docker/netns/x', 'relative', '/a b', '/a"b'],
  port: [0, -1, 65536, 1.5, '80', Number.MAX_SAFE_INTEGER],
  hostPort: [-1, 65536, 2.5, '8080'],
  proto: [0, 7, 'tcp', 6.5, -6],
};

/** Optional fields treat "" as absent (Go's zero value), so "" is valid there. */
const OPTIONAL: ReadonlySet<Kind> = new Set(['hostIp', 'mac']);

function invalidValue(g: Gen, kind: Kind, valid: unknown): unknown {
  const roll = g.int(0, 3);
  if (roll === 0) return g.pick(KIND_SPECIFIC[kind]);
  if (roll === 1) return g.pick(kind === 'port' || kind === 'hostPort' || kind === 'proto' ? NOT_NUMBERS : NOT_STRINGS);
  if (typeof valid === 'string' && valid !== '') {
    // The valid value with a separator spliced in, as the injections were.
    const at = g.int(0, valid.length);
    return valid.slice(0, at) + g.pick(SEPARATORS) + valid.slice(at);
  }
  return OPTIONAL.has(kind) ? g.pick(KIND_SPECIFIC[kind]) : g.pick(['', ...KIND_SPECIFIC[kind]]);
}

type Path = readonly (string | number)[];

interface Field {
  path: Path;
  kind: Kind;
}

/**
 * A valid port mapping Sluice publishes; host ports sometimes a range, host IP
 * sometimes given. (sctp and HostPort 0 decode too, but the driver refuses them.)
 */
function portMapping(g: Gen): Record<string, unknown> {
  const hostPort = g.int(1, 65535);
  const hostPortEnd = g.pick([0, hostPort, Math.min(65535, hostPort + g.int(0, 10))]);
  return {
    Proto: g.pick([6, 17]),
    IP: '',
    Port: g.int(1, 65535),
    HostIP: g.pick(['', '0.0.0.0', '127.0.0.1', '192.0.2.1', '::']),
    HostPort: hostPort,
    HostPortEnd: hostPortEnd,
  };
}

function portFields(prefix: Path): Field[] {
  return [
    { path: [...prefix, 'Proto'], kind: 'proto' },
    { path: [...prefix, 'Port'], kind: 'port' },
    { path: [...prefix, 'HostIP'], kind: 'hostIp' },
    { path: [...prefix, 'HostPort'], kind: 'hostPort' },
    { path: [...prefix, 'HostPortEnd'], kind: 'hostPort' },
  ];
}

const REF_FIELDS: Field[] = [
  { path: ['NetworkID'], kind: 'dockerId' },
  { path: ['EndpointID'], kind: 'dockerId' },
];

/** Per method: a valid body (drawn at random where the protocol allows variety) and its checked fields. */
const METHODS: Record<string, (g: Gen) => { body: Record<string, unknown>; fields: Field[] }> = {
  'NetworkDriver.CreateNetwork': () => ({
    body: {
      NetworkID: FRESH,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'sluice-local', Pool: SUBNET, Gateway: '10.96.0.1/16', AuxAddresses: { a: '10.96.0.9/16' } }],
      IPv6Data: [],
    },
    fields: [
      { path: ['NetworkID'], kind: 'dockerId' },
      { path: ['IPv4Data', 0, 'Pool'], kind: 'cidr4' },
      { path: ['IPv4Data', 0, 'Gateway'], kind: 'cidr4' },
      { path: ['IPv4Data', 0, 'AuxAddresses', 'a'], kind: 'cidr4' },
    ],
  }),
  'NetworkDriver.DeleteNetwork': () => ({ body: { NetworkID: NET }, fields: [{ path: ['NetworkID'], kind: 'dockerId' }] }),
  'NetworkDriver.CreateEndpoint': (g) => ({
    body: {
      ...(createEndpointBody(FRESH, spareAddress, { MacAddress: '02:42:0a:60:00:4d' }) as Record<string, unknown>),
      Options: { [PORTMAP]: [portMapping(g)] },
    },
    fields: [
      ...REF_FIELDS,
      { path: ['Interface', 'Address'], kind: 'cidr4' },
      { path: ['Interface', 'MacAddress'], kind: 'mac' },
      ...portFields(['Options', PORTMAP, 0]),
    ],
  }),
  'NetworkDriver.EndpointOperInfo': () => ({ body: { NetworkID: NET, EndpointID: LIVE }, fields: REF_FIELDS }),
  'NetworkDriver.DeleteEndpoint': () => ({ body: { NetworkID: NET, EndpointID: LIVE }, fields: REF_FIELDS }),
  'NetworkDriver.Join': (g) => ({
    body: { NetworkID: NET, EndpointID: LIVE, SandboxKey: SANDBOX, Options: { [PORTMAP]: [portMapping(g), portMapping(g)] } },
    fields: [...REF_FIELDS, { path: ['SandboxKey'], kind: 'sandboxKey' }, ...portFields(['Options', PORTMAP, g.int(0, 1)])],
  }),
  'NetworkDriver.Leave': () => ({ body: { NetworkID: NET, EndpointID: LIVE }, fields: REF_FIELDS }),
  'NetworkDriver.ProgramExternalConnectivity': (g) => ({
    body: { NetworkID: NET, EndpointID: LIVE, Options: { [PORTMAP]: [portMapping(g)] } },
    fields: [...REF_FIELDS, ...portFields(['Options', PORTMAP, 0])],
  }),
  'NetworkDriver.RevokeExternalConnectivity': () => ({ body: { NetworkID: NET, EndpointID: LIVE }, fields: REF_FIELDS }),
  'IpamDriver.RequestPool': () => ({
    body: { AddressSpace: 'sluice-local', Pool: '10.97.0.0/16', SubPool: '', Options: {}, V6: false },
    fields: [{ path: ['Pool'], kind: 'cidr4' }],
  }),
  'IpamDriver.ReleasePool': () => ({ body: { PoolID: POOL }, fields: [{ path: ['PoolID'], kind: 'poolId' }] }),
  'IpamDriver.RequestAddress': () => ({
    body: { PoolID: POOL, Address: '10.96.0.78', Options: null },
    fields: [
      { path: ['PoolID'], kind: 'poolId' },
      { path: ['Address'], kind: 'ip4' },
    ],
  }),
  'IpamDriver.ReleaseAddress': () => ({
    body: { PoolID: POOL, Address: '10.96.0.78' },
    fields: [
      { path: ['PoolID'], kind: 'poolId' },
      { path: ['Address'], kind: 'ip4' },
    ],
  }),
};

function setAt(body: Record<string, unknown>, path: Path, value: unknown): Record<string, unknown> {
  const copy = structuredClone(body);
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
  return copy;
}

function getAt(body: Record<string, unknown>, path: Path): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], body);
}

/** One valid body with one field made invalid. */
function invalidRequest(g: Gen, make: (g: Gen) => { body: Record<string, unknown>; fields: Field[] }): Record<string, unknown> {
  const { body, fields } = make(g);
  const field = g.pick(fields);
  if (field.path.at(-1) === 'HostPortEnd') {
    // Ordered ranges: an end below the start, or an end without a start (an end of 0 means "just the start").
    const start = getAt(body, [...field.path.slice(0, -1), 'HostPort']) as number;
    if (start !== 1 && g.int(0, 2) === 0) return setAt(body, field.path, start === 0 ? g.int(1, 65535) : g.int(1, start - 1));
  }
  return setAt(body, field.path, invalidValue(g, field.kind, getAt(body, field.path)));
}

const SEED = 20261127;
const CASES_PER_METHOD = 25;

describe('property: every invalid request is refused with {"Err"} and changes nothing', () => {
  it.each(Object.keys(METHODS))(`%s (seed ${SEED})`, async (method) => {
    const g = new Gen(prng(SEED + method.length * 7919 + method.charCodeAt(method.length - 1)));
    for (let i = 0; i < CASES_PER_METHOD; i++) await expectRefused(method, invalidRequest(g, METHODS[method]!));
  });

  it(`positive control: the valid bodies the generator starts from are accepted (seed ${SEED})`, async () => {
    const g = new Gen(prng(SEED));
    for (let i = 0; i < 20; i++) {
      await ok('NetworkDriver.Join', METHODS['NetworkDriver.Join']!(g).body);
      await ok('NetworkDriver.ProgramExternalConnectivity', METHODS['NetworkDriver.ProgramExternalConnectivity']!(g).body);
    }
    await ok('NetworkDriver.CreateEndpoint', METHODS['NetworkDriver.CreateEndpoint']!(g).body);
    expect(host.dataplane.endpoints.has(`slv${FRESH.slice(0, 11)}`)).toBe(true);
  });
});

describe('the issue 7 inputs, each refused with nothing left behind', () => {
  it('a newline in MacAddress (it ran injected ip commands)', async () => {
    const address = await requestAddress();
    await expectRefused(
      'NetworkDriver.CreateEndpoint',
      createEndpointBody(FRESH, address, { MacAddress: '02:42:0a:60:00:05\nlink set dev eth0 down' }),
      /Interface\.MacAddress must be a MAC address/,
    );
    // Positive control: the same request with the MAC alone.
    await ok('NetworkDriver.CreateEndpoint', createEndpointBody(FRESH, address, { MacAddress: '02:42:0a:60:00:05' }));
    expect(host.dataplane.endpoints.get(`slv${FRESH.slice(0, 11)}`)?.mac).toBe('02:42:0a:60:00:05');
  });

  it('a quote and a newline in EndpointID with a port mapping (it injected a DNAT rule)', async () => {
    const injected = `${LIVE}"\n-A SLUICE-DNAT -p tcp --dport 22 -j DNAT --to-destination 10.96.0.99:22\n#"`;
    const ports = { [PORTMAP]: [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8081, HostPortEnd: 8081 }] };
    for (const method of ['NetworkDriver.Join', 'NetworkDriver.ProgramExternalConnectivity']) {
      await expectRefused(method, { NetworkID: NET, EndpointID: injected, SandboxKey: SANDBOX, Options: ports }, /EndpointID must be a Docker ID/);
    }
    await expectRefused('NetworkDriver.CreateEndpoint', { ...(createEndpointBody(injected, await requestAddress()) as object), Options: ports });
    // Positive control: the mapping itself is published for the real ID.
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: LIVE, Options: ports });
    expect(renderedRules(host.dataplane.firewall.nat)).toContain('--dport 8081');
    expect(renderedRules(host.dataplane.firewall.nat)).not.toContain('--dport 22');
  });

  it('HostIP "not-an-ip" (it made every nat apply fail until reconciliation)', async () => {
    const ports = (hostIp: string) => ({ [PORTMAP]: [{ Proto: 6, IP: '', Port: 80, HostIP: hostIp, HostPort: 8082, HostPortEnd: 8082 }] });
    await expectRefused('NetworkDriver.Join', { NetworkID: NET, EndpointID: LIVE, SandboxKey: SANDBOX, Options: ports('not-an-ip') }, /HostIP must be an IP address, got "not-an-ip"/);
    await expectRefused('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: LIVE, Options: ports('not-an-ip') });
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: LIVE, Options: ports('127.0.0.1') });
    expect(renderedRules(host.dataplane.firewall.nat)).toContain('-d 127.0.0.1/32 --dport 8082');
  });

  it.each([
    ['outside the subnet', '10.200.0.5/16', /not in the network's subnet 10\.96\.0\.0\/16/],
    ['never allocated', '10.96.0.200/16', /was not allocated to this node by sluice IPAM/],
    ["the etcd host's address (inside the subnet, never allocated)", '10.96.3.4/16', /was not allocated to this node/],
    ['with a prefix length other than the subnet\'s', 'LIVE/32', /not in the network's subnet/],
  ])('CreateEndpoint with an address %s (it got 200 and a /32 route)', async (_what, address, message) => {
    const cidr = address === 'LIVE/32' ? `${(await requestAddress()).split('/')[0]!}/32` : address;
    await expectRefused('NetworkDriver.CreateEndpoint', createEndpointBody(FRESH, cidr), message);
  });

  it('CreateEndpoint with an address another endpoint holds', async () => {
    await expectRefused('NetworkDriver.CreateEndpoint', createEndpointBody(FRESH, liveAddress), /already held by endpoint 54ae0c1d2e3f/);
  });

  it('DeleteEndpoint of an unknown ID sharing the first 11 hex digits of a live one (it removed the live veth)', async () => {
    const before = await snapshot();
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: LIVE_PREFIX_TWIN });
    expect(await snapshot()).toEqual(before);
    expect(host.dataplane.endpoints.has(`slv${LIVE.slice(0, 11)}`)).toBe(true);
    // Nor may such an ID take over the live veth: the kernel refuses its name, so Join fails,
    // and Docker's cleanup after a failed Join leaves the live veth as it was.
    const twinAddress = await requestAddress();
    await ok('NetworkDriver.CreateEndpoint', createEndpointBody(LIVE_PREFIX_TWIN, twinAddress));
    const join = await call('NetworkDriver.Join', { NetworkID: NET, EndpointID: LIVE_PREFIX_TWIN, SandboxKey: SANDBOX, Options: {} });
    expect({ status: join.status, json: join.json }).toEqual({ status: 409, json: { Err: expect.stringMatching(/veth slv54ae0c1d2e3 exists already/) } });
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: LIVE_PREFIX_TWIN });
    await ok('IpamDriver.ReleaseAddress', { PoolID: POOL, Address: twinAddress.split('/')[0] });
    await new Promise((resolve) => setImmediate(resolve)); // a veth removal starts after the reply
    // Compared but for the count of dataplane calls: the refused veth was one, and changed nothing.
    const state = (taken: unknown) => ({ ...(taken as object), mutations: undefined });
    expect(state(await snapshot())).toEqual(state(before));
    // Positive control: the live endpoint's own ID removes it.
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: LIVE });
    expect(host.dataplane.endpoints.size).toBe(0);
  });

  it("ReleaseAddress of a live container's address (the next docker run got the same address)", async () => {
    await expectRefused('IpamDriver.ReleaseAddress', { PoolID: POOL, Address: liveAddress.split('/')[0] }, /in use by endpoint 54ae0c1d2e3f/);
    expect(await requestAddress()).not.toBe(liveAddress);
  });
});

describe("Docker's own orders keep working", () => {
  it('docker stop: Leave, DeleteEndpoint, then ReleaseAddress frees the address for the next container', async () => {
    await ok('NetworkDriver.Leave', { NetworkID: NET, EndpointID: LIVE });
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: LIVE });
    await ok('IpamDriver.ReleaseAddress', { PoolID: POOL, Address: liveAddress.split('/')[0] });
    expect(await requestAddress()).toBe(liveAddress);
  });

  it('a veth the kernel refuses fails Join; DeleteEndpoint and ReleaseAddress then leave nothing, the address whole again', async () => {
    const address = await requestAddress();
    host.dataplane.failNext('addEndpoint');
    // The veth is made while Docker goes on from CreateEndpoint: its failure reaches Docker at Join.
    await ok('NetworkDriver.CreateEndpoint', createEndpointBody(FRESH, address));
    const join = { NetworkID: NET, EndpointID: FRESH, SandboxKey: SANDBOX, Options: {} };
    const refused = await call('NetworkDriver.Join', join);
    expect({ status: refused.status, json: refused.json }).toEqual({ status: 500, json: { Err: expect.stringMatching(/injected failure in addEndpoint/) } });
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: FRESH });
    await ok('IpamDriver.ReleaseAddress', { PoolID: POOL, Address: address.split('/')[0] });
    expect(await host.registry.getEndpoint('h1', FRESH)).toBeUndefined();
    expect((await host.registry.listAddresses(POOL)).map((a) => a.record.address)).not.toContain(address.split('/')[0]);
    // The next container gets the address and can use it.
    expect(await requestAddress()).toBe(address);
    await ok('NetworkDriver.CreateEndpoint', createEndpointBody(FRESH, address));
    await ok('NetworkDriver.Join', join);
    expect(host.dataplane.endpoints.get(`slv${FRESH.slice(0, 11)}`)).toMatchObject({ address: address.split('/')[0] });
  });
});
