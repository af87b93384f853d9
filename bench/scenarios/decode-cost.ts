// What strict decoding costs a plugin request: the wire decoders (parse, then check every
// field's form) for the two requests of every container start, the largest Docker sends,
// timed in-process. No lab: the figure is CPU time in the agent, not I/O.
import { decodeCreateEndpoint, decodeJoin, parseBody } from '../../src/api/wire';
import { figure } from '../report';
import type { Scenario } from '../scenario';
import { percentile } from '../stats';

const ROUNDS = 2000;
/** Requests timed together, so one sample is well above the timer's resolution. */
const BATCH = 50;

const NET = '1720a8f3c0b1d2e3f40516273849aabbccddeeff00112233445566778899aabb';
const EP = '54ae0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f';
/** A start with several `-p` mappings, one with a host address and a range. */
const PORTS = [
  { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
  { Proto: 17, IP: '', Port: 53, HostIP: '127.0.0.1', HostPort: 5300, HostPortEnd: 5310 },
  { Proto: 6, IP: '', Port: 443, HostIP: '', HostPort: 8443, HostPortEnd: 8443 },
];
const OPTIONS = { 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }], 'com.docker.network.portmap': PORTS };
const CREATE = `${JSON.stringify({
  NetworkID: NET,
  EndpointID: EP,
  Interface: { Address: '10.77.0.12/16', AddressIPv6: '', MacAddress: '02:42:0a:4d:00:0c' },
  Options: OPTIONS,
})}\n`;
const JOIN = `${JSON.stringify({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/cfdd06f0428c', Options: OPTIONS })}\n`;

/** Per-request times in µs of `decode`, one per batch. */
function time(decode: () => unknown): number[] {
  for (let i = 0; i < ROUNDS; i++) decode(); // warm up the JIT
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) decode();
    samples.push(Number(process.hrtime.bigint() - start) / 1e3 / BATCH);
  }
  return samples;
}

export const decodeCost: Scenario = {
  name: 'decode-cost',
  labs: [],
  run(ctx) {
    const create = time(() => decodeCreateEndpoint(parseBody('CreateEndpoint', CREATE)));
    const join = time(() => decodeJoin(parseBody('Join', JOIN)));
    // "Validation adds ≤ 0.5 ms to any plugin request": these are the largest requests.
    ctx.add(figure('decode-cost', 'CreateEndpoint decode+validate p99', percentile(create, 99), 'µs', { op: '<=', limit: 500 }));
    ctx.add(figure('decode-cost', 'Join decode+validate p99', percentile(join, 99), 'µs', { op: '<=', limit: 500 }));
    ctx.add(figure('decode-cost', 'CreateEndpoint decode+validate p50', percentile(create, 50), 'µs'));
    return Promise.resolve();
  },
};
