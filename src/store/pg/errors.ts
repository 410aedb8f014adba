// What a failed PostgreSQL call becomes: a coded error, never a crash. A lost or unreachable
// database is STORE_UNAVAILABLE (503 with Retry-After: the caller asks again); an error the
// database answered (a constraint, a bad statement) is a bug here, INTERNAL.
import pg from 'pg';
import { z } from 'zod';
import { PkmError } from '../../errors.js';

/** Seconds a client waits before asking again while the database is away. */
export const UNAVAILABLE_RETRY_AFTER = 5;

/**
 * SQLSTATE classes and codes that mean the database is away or going away, not that the
 * statement was wrong: 08 connection exceptions, 57P0x shutdown and restart, 53 out of
 * resources (too many connections, disk full), 58 system errors.
 */
function databaseAway(code: string | undefined): boolean {
  if (code === undefined) return false;
  return ['08', '53', '58'].includes(code.slice(0, 2)) || code.startsWith('57P');
}

/** Turns anything a pg call threw into a PkmError (a PkmError passes as it is). */
export function storeError(err: unknown, doing: string): PkmError {
  if (err instanceof PkmError) return err;
  // A bug here (a shape this code got wrong), not the database being away.
  if (err instanceof z.ZodError || err instanceof TypeError || err instanceof RangeError)
    return new PkmError('INTERNAL', `${doing}: ${err.message}`, { cause: err });
  if (err instanceof pg.DatabaseError && !databaseAway(err.code)) {
    return new PkmError('INTERNAL', `PostgreSQL refused ${doing}: ${err.message}`, {
      cause: err,
    });
  }
  // Anything else pg throws is about the connection: refused, reset, timed out, terminated,
  // or a pool already ended. Whether a COMMIT in flight was applied is then unknown.
  const reason = err instanceof Error ? err.message : String(err);
  return new PkmError(
    'STORE_UNAVAILABLE',
    `the PostgreSQL store is unavailable (${doing}): ${reason}`,
    {
      cause: err,
      retryAfter: UNAVAILABLE_RETRY_AFTER,
    },
  );
}

/** Runs a pg call, turning its failure into a coded error. */
export async function guarded<T>(doing: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw storeError(err, doing);
  }
}
