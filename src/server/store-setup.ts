// The store `pkm server` runs on: LevelDB in --data-dir, or PostgreSQL (--store). Its files (the
// database password, the CA) are read by prepareStoreOpen before anything connects, so a bad
// file changes nothing; openServerStore then opens the store whole, or throws having closed it.
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { errnoOf, PkmError } from '../errors.js';
import { readSecretFile } from '../files.js';
import type { Logger } from '../log.js';
import type { StoreContract } from '../store/contract.js';
import { kekLoader, loadKek } from '../store/encryption.js';
import type { PgStore, PgStoreOptions } from '../store/pg/pg-store.js';
import { Store } from '../store/store.js';
import type { ServerConfig } from './config.js';
import { describeStore, type StoreConfig, type StoreSsl } from './store-config.js';

/** What opening needs, every file already read and checked. */
export type StoreOpening =
  | { readonly kind: 'leveldb'; readonly dataDir: string }
  | {
      readonly kind: 'postgres';
      readonly url: string;
      readonly password: string | undefined;
      readonly ssl: false | ConnectionOptions;
      readonly kek: Buffer;
    };

export interface ServerStore {
  readonly store: StoreContract;
  /** For the startup line: the store's kind and place, never a password. */
  readonly where: string;
  /** A round trip to the store, where it can be away while the server runs (PostgreSQL). */
  readonly ping?: () => Promise<void>;
}

async function readCa(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new PkmError(
      'INVALID_CONFIG',
      `--store-ca-file names a file that cannot be read (${errnoOf(err) ?? 'unreadable'}): ${file}, e.g. --store-ca-file /etc/pkm/db-ca.crt`,
    );
  }
}

/** pg's `ssl`: require encrypts without checking; verify-full checks the CA and the host name. */
async function sslOptions(ssl: StoreSsl): Promise<false | ConnectionOptions> {
  if (ssl.mode === 'disable') return false;
  if (ssl.mode === 'require') return { rejectUnauthorized: false };
  // node checks the certificate's names against the host pg connects to (checkServerIdentity).
  return { rejectUnauthorized: true, ca: await readCa(ssl.caFile) };
}

/** How to reach a database: the URL, and its password and CA read from their files. */
export interface PgReach {
  readonly url: string;
  readonly password: string | undefined;
  readonly ssl: false | ConnectionOptions;
}

/** Reads the password and the CA files: refusals here come before any connection. */
export async function preparePgReach(
  store: Extract<StoreConfig, { kind: 'postgres' }>,
): Promise<PgReach> {
  const password =
    store.passwordFile === undefined
      ? undefined
      : await readSecretFile(store.passwordFile, 'store-password-file');
  if (password === '')
    throw new PkmError(
      'INVALID_CONFIG',
      `--store-password-file ${store.passwordFile ?? ''} is empty, e.g. --store-password-file /etc/pkm/db-password`,
    );
  return { url: store.url, password, ssl: await sslOptions(store.ssl) };
}

/** Reads the password, the CA and the KEK: refusals here come before any connection. */
export async function prepareStoreOpen(
  config: Pick<ServerConfig, 'store' | 'kekFile'>,
): Promise<StoreOpening> {
  const { store } = config;
  if (store.kind === 'leveldb') return store;
  const reach = await preparePgReach(store);
  // The parser requires --kek-file here; checked again so no KEK is ever made up for a database.
  if (config.kekFile === undefined)
    throw new PkmError(
      'INVALID_CONFIG',
      '--store postgres://… needs --kek-file, e.g. --kek-file /etc/pkm/kek',
    );
  const { kek } = await loadKek('', config.kekFile);
  return { kind: 'postgres', ...reach, kek };
}

export async function openServerStore(
  opening: StoreOpening,
  config: ServerConfig,
  log: Logger,
  sync: boolean,
): Promise<ServerStore> {
  const where = describeStore(config.store);
  if (opening.kind === 'leveldb') {
    const store = await Store.open(opening.dataDir, {
      kek: kekLoader(opening.dataDir, config.kekFile, () =>
        log.warn(
          { kekFile: `${opening.dataDir}/kek` },
          'made a new KEK next to the data: keep a copy elsewhere, or pass --kek-file',
        ),
      ),
      ...(sync ? {} : { sync: false }),
    });
    return { store, where };
  }
  // The benchmark's unsynced commits exist for LevelDB only: refused rather than ignored.
  if (!sync) throw new PkmError('INVALID_CONFIG', 'unsynced commits are a LevelDB benchmark only');
  const { kek } = opening;
  // One of many servers; refused while a maintenance command has the database (presence.ts).
  const store = await openPgStore(opening, {
    kek: async () => kek,
    log,
    lanes: true,
    presence: 'server',
  });
  return { store, where, ping: () => store.ping() };
}

/**
 * Opens a prepared store for maintenance (`pkm db copy`): with `kek`, its secrets open; without,
 * they stay sealed and nothing is made (no data key is written into an empty store). Alone on
 * it: a LevelDB store is locked, and a database is refused while a server runs on it.
 */
export async function openStore(
  opening: StoreOpening,
  kek: Buffer | undefined,
): Promise<Store | PgStore> {
  const secrets = kek === undefined ? {} : { kek: async () => kek };
  if (opening.kind === 'leveldb') return Store.open(opening.dataDir, secrets);
  return openPgStore(opening, { ...secrets, presence: 'alone' });
}

/**
 * PgStore.open on a prepared reach, its password and TLS as read from their files. The
 * PostgreSQL store and node-postgres are loaded here, when a database is used: a server on
 * LevelDB starts without them (issue 17, point 5).
 */
export async function openPgStore(
  reach: PgReach,
  opts: Omit<PgStoreOptions, 'ssl' | 'password'>,
): Promise<PgStore> {
  const { PgStore } = await import('../store/pg/pg-store.js');
  return PgStore.open(reach.url, {
    ...opts,
    ssl: reach.ssl,
    ...(reach.password === undefined ? {} : { password: reach.password }),
  });
}
