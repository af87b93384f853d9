/** The per-source token bucket, on a clock the test moves. */
import { RateLimiter } from '../../../src/dns/rate-limit';

function limiter(maxSources = 100): { limiter: RateLimiter; advance: (ms: number) => void } {
  let now = 0;
  return { limiter: new RateLimiter({ perSecond: 10, burst: 5, maxSources }, () => now), advance: (ms) => (now += ms) };
}

function taken(l: RateLimiter, source: string, count: number): number {
  let allowed = 0;
  for (let i = 0; i < count; i++) if (l.take(source)) allowed++;
  return allowed;
}

describe('RateLimiter', () => {
  it('lets a burst through, then drops a flood from that source', () => {
    const { limiter: l } = limiter();
    expect(taken(l, '10.96.0.2', 100)).toBe(5);
  });

  it('keeps serving other sources while one floods', () => {
    const { limiter: l } = limiter();
    taken(l, '10.96.0.2', 100);
    expect(l.take('10.96.0.3')).toBe(true);
    expect(l.take('10.96.0.2')).toBe(false);
  });

  it('refills at the sustained rate, never above the burst', () => {
    const { limiter: l, advance } = limiter();
    taken(l, 'a', 5);
    advance(300); // 3 tokens at 10/s
    expect(taken(l, 'a', 10)).toBe(3);
    advance(60_000);
    expect(taken(l, 'a', 100)).toBe(5);
  });

  it('does not punish a source when the clock steps backwards', () => {
    const { limiter: l, advance } = limiter();
    taken(l, 'a', 5);
    advance(-10_000);
    expect(l.take('a')).toBe(false);
    // From there, time runs normally again: 100 ms bring one token, not a debt of 100 s.
    advance(100);
    expect(l.take('a')).toBe(true);
  });

  it('remembers a bounded number of sources under a flood of forged ones', () => {
    const { limiter: l } = limiter(8);
    for (let i = 0; i < 100; i++) expect(l.take(`forged-${i}`)).toBe(true);
    expect(l.size).toBeLessThanOrEqual(8);
  });

  it('forgets idle sources first, so a flooding one stays drained', () => {
    const { limiter: l, advance } = limiter(8);
    taken(l, 'flooder', 100);
    for (let i = 0; i < 7; i++) l.take(`idle-${i}`);
    advance(1000);
    taken(l, 'flooder', 100);
    expect(l.take('newcomer')).toBe(true);
    expect(l.size).toBeLessThanOrEqual(8);
    expect(l.take('flooder')).toBe(false);
  });
});
