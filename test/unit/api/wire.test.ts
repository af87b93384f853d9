/**
 * Wire details that HTTP tests show only indirectly: body parsing, absent
 * versus empty fields, and the reply rules libnetwork enforces.
 */
import {
  decodeCreateEndpoint,
  decodeEndpointRef,
  decodeReleaseAddress,
  decodeReleasePool,
  decodeRequestAddress,
  encodeCreateEndpoint,
  encodeJoin,
  parseBody,
} from '../../../src/api/wire';
import { BadRequestError } from '../../../src/errors';
import type { CreateEndpointRequest } from '../../../src/protocol/services';

const NET = 'a1'.repeat(32);
const EP = 'e1'.repeat(32);

describe('parseBody', () => {
  it.each(['', '\n', ' \r\n'])('reads an empty body %j as undefined', (raw) => {
    expect(parseBody('Plugin.Activate', raw)).toBeUndefined();
  });

  it('tolerates the trailing newline of Go json.Encoder', () => {
    expect(parseBody('IpamDriver.ReleasePool', '{"PoolID":"p1"}\n')).toEqual({ PoolID: 'p1' });
  });

  it('turns a syntax error into a BadRequestError naming the method', () => {
    const attempt = (): unknown => parseBody('IpamDriver.ReleasePool', '{"PoolID": p1}\n');
    expect(attempt).toThrow(BadRequestError);
    expect(attempt).toThrow(/^malformed JSON in IpamDriver\.ReleasePool request: /);
  });
});

describe('decoders', () => {
  it('leave Go zero values out instead of passing empty strings on', () => {
    const req = decodeCreateEndpoint({
      NetworkID: NET,
      EndpointID: EP,
      Interface: { Address: '', AddressIPv6: '', MacAddress: '' },
      Options: { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 80, HostPortEnd: 80 }] },
    });
    expect(Object.keys(req).sort()).toEqual(['driverOptions', 'endpointId', 'networkId', 'portMappings']);
    expect(Object.keys(req.portMappings[0] ?? {}).sort()).toEqual(['containerPort', 'hostPort', 'hostPortEnd', 'proto']);
    expect(Object.keys(decodeRequestAddress({ PoolID: '10.96.0.0-16', Address: '', Options: {} }))).toEqual(['poolId']);
  });

  it('take the pools and addresses of both families, and refuse a PoolID that is not a canonical sluice one', () => {
    expect(decodeRequestAddress({ PoolID: 'fd00:96::-64', Address: 'fd00:96::7', Options: {} })).toEqual({ poolId: 'fd00:96::-64', address: 'fd00:96::7' });
    expect(decodeReleaseAddress({ PoolID: 'fd00:96::-64', Address: 'fd00:96::7' })).toEqual({ poolId: 'fd00:96::-64', address: 'fd00:96::7' });
    expect(decodeReleasePool({ PoolID: 'fd00:96::-64' })).toEqual({ poolId: 'fd00:96::-64' });
    expect(() => decodeReleasePool({ PoolID: 'fd00:0096::-64' })).toThrow(/PoolID must be a sluice PoolID/);
    expect(() => decodeReleaseAddress({ PoolID: 'fd00:96::-64', Address: 'fd00:96::7/64' })).toThrow(/Address must be an IP address/);
  });

  it('name the calling method in endpoint-reference errors', () => {
    expect(() => decodeEndpointRef('Leave', { NetworkID: NET, EndpointID: 5 })).toThrow(
      new BadRequestError('Leave: EndpointID must be a string, got number'),
    );
  });
});

describe('encodeCreateEndpoint', () => {
  const req: CreateEndpointRequest = { networkId: 'n', endpointId: 'e', portMappings: [], driverOptions: {} };

  it.each<[string, string | undefined, string | undefined, unknown]>([
    ['MAC chosen, none requested', undefined, 'ee:ee:00:00:00:01', { Interface: { MacAddress: 'ee:ee:00:00:00:01' } }],
    ['MAC chosen, one requested', '02:42:00:00:00:01', 'ee:ee:00:00:00:01', {}],
    ['no MAC chosen', undefined, undefined, {}],
    ['MAC requested, none chosen', '02:42:00:00:00:01', undefined, {}],
  ])('%s', (_name, requested, chosen, expected) => {
    const withMac = requested === undefined ? req : { ...req, macAddress: requested };
    const result = chosen === undefined ? {} : { macAddress: chosen };
    expect(encodeCreateEndpoint(withMac, result)).toEqual(expected);
  });
});

describe('encodeJoin', () => {
  it('writes a connected route with an empty NextHop, as Go expects a string', () => {
    const reply = encodeJoin({
      srcName: 's',
      dstPrefix: 'eth',
      gateway: '169.254.1.1',
      staticRoutes: [{ destination: '169.254.1.1/32', routeType: 1 }],
      disableGatewayService: false,
    });
    expect(JSON.stringify(reply)).toBe(
      '{"InterfaceName":{"SrcName":"s","DstPrefix":"eth"},"Gateway":"169.254.1.1",' +
        '"StaticRoutes":[{"Destination":"169.254.1.1/32","RouteType":1,"NextHop":""}],"DisableGatewayService":false}',
    );
  });

  it('gives the IPv6 gateway of a dual-stack network as a plain IP', () => {
    const reply = encodeJoin({ srcName: 's', dstPrefix: 'eth', gateway: '10.96.0.1', gatewayIPv6: 'fd00:96::1', staticRoutes: [], disableGatewayService: true });
    expect(reply).toMatchObject({ Gateway: '10.96.0.1', GatewayIPv6: 'fd00:96::1' });
  });
});
