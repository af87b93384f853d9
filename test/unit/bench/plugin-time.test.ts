import { cycles } from '../../../bench/scenarios/plugin-time';

describe('plugin-time cycles', () => {
  it('groups every call from one RequestAddress up to the next, each call in exactly one cycle', () => {
    const calls = [
      { method: 'Join', ms: 9 }, // before the first cycle: the warm-up's tail, left out
      { method: 'RequestAddress', ms: 1 },
      { method: 'CreateEndpoint', ms: 2 },
      { method: 'Join', ms: 3 },
      { method: 'Leave', ms: 4 },
      { method: 'RequestAddress', ms: 5 },
      { method: 'ReleaseAddress', ms: 6 },
      { method: 'CreateEndpoint', ms: 7 },
    ];
    expect(cycles(calls).map((cycle) => cycle.map((c) => c.method))).toEqual([
      ['RequestAddress', 'CreateEndpoint', 'Join', 'Leave'],
      ['RequestAddress', 'ReleaseAddress', 'CreateEndpoint'],
    ]);
  });

  it('keeps both addresses of a dual-stack container (IPv4 then IPv6) in one cycle', () => {
    const dual = ['RequestAddress', 'RequestAddress', 'CreateEndpoint', 'Join', 'Leave', 'DeleteEndpoint', 'ReleaseAddress', 'ReleaseAddress'];
    const calls = [...dual, ...dual].map((method, i) => ({ method, ms: i }));
    expect(cycles(calls).map((cycle) => cycle.map((c) => c.method))).toEqual([dual, dual]);
  });
});
