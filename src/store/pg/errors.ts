// What a failed PostgreSQL call becomes: a coded error, never a crash. A lost or unreachable
// database is STORE_UNAVAILABLE (503 with Retry-After: the caller asks again); a login the
// database refuses is STORE_LOGIN_REFUSED, and a certificate that does not verify is
// STORE_UNTRUSTED (both fixed by configuration, so never retried); an error the database
// answered (a constraint, a bad statement) is a bug here, INTERNAL.
import pg from 'pg';
import { z } from 'zod';
import { errnoOf, PkmError } from '../../errors.js';

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

/**
 * SQLSTATE classes of a login the database refuses: 28 invalid authorization (a wrong
 * password, an unknown user, a pg_hba.conf rule), 3D an unknown database.
 */
function loginRefused(code: string | undefined): boolean {
  return code !== undefined && ['28', '3D'].includes(code.slice(0, 2));
}

/** Node's codes for a peer certificate that does not verify (tls.connect, OpenSSL's names). */
const UNTRUSTED_CERT = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
]);

/** A refusal fixed by configuration (the password, the CA, TLS), or undefined. */
function configRefusal(err: unknown, doing: string): PkmError | undefined {
  const message = err instanceof Error ? err.message : '';
  const code = errnoOf(err);
  if (err instanceof pg.DatabaseError && loginRefused(code))
    return new PkmError(
      'STORE_LOGIN_REFUSED',
      `PostgreSQL refused the login: ${message} (${doing})`,
      { cause: err },
    );
  // pg's own words when the server asks for a password (scram) and it was given none.
  if (message.includes('client password must be a string'))
    return new PkmError(
      'STORE_LOGIN_REFUSED',
      `PostgreSQL asks for a password (${doing}), and none was given (--store-password-file)`,
      { cause: err },
    );
  if (code !== undefined && UNTRUSTED_CERT.has(code))
    return new PkmError(
      'STORE_UNTRUSTED',
      `the database's TLS certificate does not verify: ${message} (${doing})`,
      { cause: err },
    );
  if (message === 'The server does not support SSL connections')
    return new PkmError(
      'STORE_UNTRUSTED',
      `TLS was asked for, and the database does not offer it (${doing})`,
      { cause: err },
    );
  return undefined;
}

/** Turns anything a pg call threw into a PkmError (a PkmError passes as it is). */
export function storeError(err: unknown, doing: string): PkmError {
  if (err instanceof PkmError) return err;
  const refusal = configRefusal(err, doing);
  if (refusal !== undefined) return refusal;
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
