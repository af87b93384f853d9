/**
 * A token bucket per source address: a container flooding the resolver gets
 * its queries dropped, and everyone else (the plugin's own requests included,
 * in the same process) keeps being served. Pure: the clock is passed in.
 */

export interface RateLimitOptions {
  /** Queries per second a source may sustain. */
  perSecond: number;
  /** Queries a quiet source may send at once. */
  burst: number;
  /** Sources remembered at most; past that, the longest-known are forgotten (a forged-source flood stays bounded). */
  maxSources: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { perSecond: 500, burst: 1000, maxSources: 10_000 };

interface Bucket {
  tokens: number;
  /** Clock reading (ms) when `tokens` was last brought up to date. */
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly options: RateLimitOptions,
    private readonly now: () => number,
  ) {}

  /** Takes a token for one query from `source`; false means drop it. */
  take(source: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(source);
    if (bucket) {
      bucket.tokens = this.refilled(bucket, now);
      bucket.at = now;
    } else {
      if (this.buckets.size >= this.options.maxSources) this.forget(now);
      bucket = { tokens: this.options.burst, at: now };
      this.buckets.set(source, bucket);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(bucket: Bucket, now: number): number {
    return Math.min(this.options.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.options.perSecond) / 1000);
  }

  /**
   * Drops full buckets (the same as no bucket), then the longest-known until a
   * quarter is free: each sweep frees many places, so a flood of new sources
   * costs O(1) per query on average.
   */
  private forget(now: number): void {
    for (const [source, bucket] of this.buckets) {
      if (this.refilled(bucket, now) >= this.options.burst) this.buckets.delete(source);
    }
    const keep = Math.floor((this.options.maxSources * 3) / 4);
    for (const source of this.buckets.keys()) {
      if (this.buckets.size <= keep) break;
      this.buckets.delete(source);
    }
  }
}
