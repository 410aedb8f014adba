// Per-caller rate limits on the allocation routes: a token bucket per identity, so one pod in a
// crash loop (or a stolen token) cannot drain the pool or starve the others.
import { makeRoom } from '../bounded-map.js';
import { PkmError } from '../errors.js';

export interface RateLimit {
  /** Tokens per minute. */
  readonly perMinute: number;
  /** Tokens allowed at once; perMinute when absent. */
  readonly burst?: number;
}

const MAX_TRACKED = 50_000;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: RateLimit,
    private readonly clock: () => number = Date.now,
  ) {}

  private get burst(): number {
    return this.limit.burst ?? this.limit.perMinute;
  }

  /** `who`'s bucket, refilled up to now. */
  private bucket(who: string): { tokens: number; at: number } {
    const now = this.clock();
    const rate = this.limit.perMinute / 60_000; // tokens per ms
    const bucket = this.buckets.get(who) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    // Re-inserted: the map's order is least recently used first.
    this.buckets.delete(who);
    makeRoom(this.buckets, MAX_TRACKED);
    this.buckets.set(who, bucket);
    return bucket;
  }

  /** Takes one request from `who`'s bucket, or RATE_LIMITED with the wait in Retry-After. */
  take(who: string): void {
    const bucket = this.bucket(who);
    if (bucket.tokens < 1) {
      const rate = this.limit.perMinute / 60_000;
      const wait = Math.ceil((1 - bucket.tokens) / rate / 1000);
      throw new PkmError(
        'RATE_LIMITED',
        `too many requests from ${who}: at most ${this.limit.perMinute} a minute`,
        { retryAfter: Math.max(1, wait) },
      );
    }
    bucket.tokens -= 1;
  }

  /** Takes up to `n` whole tokens from `who`'s bucket; returns how many it took. */
  takeUpTo(who: string, n: number): number {
    const bucket = this.bucket(who);
    const taken = Math.max(0, Math.min(n, Math.floor(bucket.tokens)));
    bucket.tokens -= taken;
    return taken;
  }
}
