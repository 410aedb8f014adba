// The pg connection settings of a store URL. pg merges a connectionString over the explicit
// settings, and its parse yields password '' for a URL without one: a password passed beside
// the URL would be silently dropped. So the URL is taken apart here and every setting is
// explicit (ssl too, or pg would read PGSSLMODE from the environment instead).
import type { ConnectionOptions } from 'node:tls';
import { PkmError } from '../../errors.js';

export interface PgConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  readonly database: string | undefined;
  readonly password?: string;
  readonly ssl: boolean | ConnectionOptions;
}

export function pgConnection(
  url: string,
  password: string | undefined,
  ssl: boolean | ConnectionOptions | undefined,
): PgConnection {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The URL is not repeated: it may hold a password.
    throw new PkmError('INVALID_CONFIG', 'the PostgreSQL URL cannot be parsed');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    throw new PkmError('INVALID_CONFIG', 'the PostgreSQL URL is not postgres://');
  const fromUrl = parsed.password === '' ? undefined : decodeURIComponent(parsed.password);
  const secret = password ?? fromUrl;
  const database = decodeURIComponent(parsed.pathname.slice(1));
  return {
    // [::1] in a URL is ::1 to a socket.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: parsed.port === '' ? 5432 : Number(parsed.port),
    user: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    database: database === '' ? undefined : database,
    ...(secret === undefined ? {} : { password: secret }),
    ssl: ssl ?? false,
  };
}
