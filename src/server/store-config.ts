// --store and its PostgreSQL flags (issue 15, point 1), checked alone and against each other at
// parse time: nothing connects before every one of them is known good. A value is never echoed
// back in a refusal, since a mistyped URL may hold a password.
import { bad, type RawFlags, text } from '../config.js';
import { PkmError } from '../errors.js';

export const SSL_MODES = ['disable', 'require', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** TLS to the database: none, encrypted without verification, or verified against a CA. */
export type StoreSsl =
  | { readonly mode: 'disable' }
  | { readonly mode: 'require' }
  | { readonly mode: 'verify-full'; readonly caFile: string };

export type StoreConfig =
  | { readonly kind: 'leveldb'; readonly dataDir: string }
  | {
      readonly kind: 'postgres';
      /** postgres://user@host:port/db, with no password and no query parameters. */
      readonly url: string;
      /** The host, for the startup line and TLS's host name check. */
      readonly host: string;
      /** The database password's file (--store-password-file); undefined: none (trust, peer). */
      readonly passwordFile: string | undefined;
      readonly ssl: StoreSsl;
    };

const URL_EXAMPLE = 'postgres://pkm@db.example:5432/pkm';
const PG_ONLY = ['storePasswordFile', 'storeSslMode', 'storeCaFile'] as const;

function flagOf(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Whether a host name is this machine: cleartext to it crosses no network. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The URL's parts, or INVALID_CONFIG: a scheme other than postgres(ql), a password, options. */
function parseStoreUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(
      'store',
      'takes a postgres:// URL (or nothing, for LevelDB in --data-dir)',
      URL_EXAMPLE,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    throw bad(
      'store',
      `takes a postgres:// or postgresql:// URL (or nothing, for LevelDB in --data-dir), not ${url.protocol}`,
      URL_EXAMPLE,
    );
  if (url.password !== '')
    throw new PkmError(
      'INVALID_CONFIG',
      `--store must not hold the password (argv and env are visible to others): put it in a file, e.g. --store ${URL_EXAMPLE} --store-password-file /etc/pkm/db-password`,
    );
  // pg reads sslmode, password and more from the query, over the flags: one source only.
  if (url.search !== '')
    throw bad(
      'store',
      'takes no query parameters (TLS is --store-ssl-mode, the password --store-password-file)',
      URL_EXAMPLE,
    );
  if (url.hostname === '' || url.pathname.length <= 1 || url.pathname.slice(1).includes('/'))
    throw bad('store', 'names a host and a database', URL_EXAMPLE);
  return url;
}

function parseSsl(raw: RawFlags, host: string): StoreSsl {
  const mode = text(raw, 'storeSslMode');
  const caFile = text(raw, 'storeCaFile');
  const known = SSL_MODES.find((m) => m === mode);
  if (mode !== undefined && known === undefined)
    throw bad('store-ssl-mode', 'is disable, require or verify-full', 'verify-full');
  if (caFile !== undefined && known !== 'verify-full')
    throw new PkmError(
      'INVALID_CONFIG',
      '--store-ca-file goes with --store-ssl-mode verify-full (the CA is only used to verify), e.g. --store-ssl-mode verify-full --store-ca-file /etc/pkm/db-ca.crt',
    );
  if (known === 'verify-full') {
    if (caFile === undefined)
      throw bad('store-ca-file', 'is needed by --store-ssl-mode verify-full', '/etc/pkm/db-ca.crt');
    return { mode: known, caFile };
  }
  if (known !== undefined) return { mode: known };
  // No default that sends the password in cleartext over a network: the operator chooses.
  if (!isLoopbackHost(host))
    throw bad(
      'store-ssl-mode',
      `is needed for a database beyond loopback (${host})`,
      'verify-full --store-ca-file /etc/pkm/db-ca.crt',
    );
  return { mode: 'disable' };
}

/**
 * --store (default: LevelDB in --data-dir) and the flags that only PostgreSQL takes. With
 * `needsKek` false (a command that never opens a secret: pkm db check, pkm deposits export),
 * a database needs no --kek-file.
 */
export function parseStoreConfig(raw: RawFlags, needsKek = true): StoreConfig {
  const value = text(raw, 'store');
  if (value === undefined) {
    const stray = PG_ONLY.find((name) => text(raw, name) !== undefined);
    if (stray !== undefined)
      throw new PkmError(
        'INVALID_CONFIG',
        `--${flagOf(stray)} needs a PostgreSQL store, e.g. --store ${URL_EXAMPLE}`,
      );
    return { kind: 'leveldb', dataDir: text(raw, 'dataDir') ?? './data' };
  }
  const url = parseStoreUrl(value);
  // No data dir holds a made-up KEK beside a database: it would be lost with the pod.
  if (needsKek && text(raw, 'kekFile') === undefined)
    throw new PkmError(
      'INVALID_CONFIG',
      '--store postgres://… needs --kek-file (there is no data dir to keep a new KEK in), e.g. --kek-file /etc/pkm/kek',
    );
  return {
    kind: 'postgres',
    url: url.href,
    host: url.hostname,
    passwordFile: text(raw, 'storePasswordFile'),
    ssl: parseSsl(raw, url.hostname),
  };
}

/** What the startup line says of the store: never a password (none is ever in the URL). */
export function describeStore(store: StoreConfig): string {
  if (store.kind === 'leveldb') return `leveldb:${store.dataDir}`;
  const url = new URL(store.url);
  url.password = '';
  return url.href;
}
