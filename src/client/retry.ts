// Retries a call while the server is down or busy: exponential backoff with full jitter,
// at least the server's Retry-After, until a deadline. A refusal (4xx) is never retried, except
// 429 RATE_LIMITED, which says when to ask again.
import { setTimeout as sleep } from 'node:timers/promises';
import { PkmError, statusOf } from '../errors.js';
import type { Logger } from '../log.js';

export interface RetryOptions {
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly baseMs?: number;
  readonly maxMs?: number;
}

function retryable(err: unknown): err is PkmError {
  return (
    err instanceof PkmError &&
    (err.code === 'SERVER_UNREACHABLE' || err.code === 'RATE_LIMITED' || statusOf(err.code) >= 500)
  );
}

export async function withRetry<T>(
  what: string,
  call: () => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const { timeoutMs, log, baseMs = 500, maxMs = 30_000 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!retryable(err)) throw err;
      const backoff = Math.random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1));
      const wait = Math.max(backoff, (err.retryAfter ?? 0) * 1000);
      if (Date.now() + wait > deadline) {
        throw new PkmError(
          'TIMEOUT',
          `gave up on ${what} after ${attempt} attempts (--timeout): ${err.message}`,
          {
            cause: err,
          },
        );
      }
      log.warn(
        { attempt, waitMs: Math.round(wait), code: err.code, reason: err.message },
        `${what}: waiting to retry`,
      );
      await sleep(wait);
    }
  }
}
