// The store an offline command works on (`pkm db check|rotate-kek`, `pkm keys import`,
// `pkm deposits export`): LevelDB in --data-dir, the default, or PostgreSQL with `--store
// postgres://…` and `pkm server`'s own flags, parsed and read by the server's code
// (store-config.ts, store-setup.ts), so a flag means the same to every command.
import type { Command } from 'commander';
import { type RawFlags, text } from './config.js';
import { PkmError } from './errors.js';
import { parseStoreConfig } from './server/store-config.js';
import { openPgStore, preparePgReach } from './server/store-setup.js';
import { flag } from './server-options.js';
import type { StoreReads } from './store/contract.js';
import { kekLoader, loadKek } from './store/encryption.js';
import type { PgStore } from './store/pg/pg-store.js';
import type { PresenceMode } from './store/pg/presence.js';
import { Store } from './store/store.js';

export interface StoreNeeds {
  /**
   * The command opens secrets: it takes --kek-file (LevelDB's default <data-dir>/kek; required
   * with a database, which has no folder to keep one in).
   */
  readonly kek: boolean;
  /**
   * `alone`: it writes, so nothing else may have the store: LevelDB's lock, and on PostgreSQL
   * the presence lock (STORE_LOCKED while any server runs). `read`: on PostgreSQL it reads
   * beside running servers; LevelDB's lock still keeps it from a running server's folder.
   */
  readonly access: 'read' | 'alone';
}

/** --data-dir, --store and its flags (and --kek-file where the command opens secrets). */
export function addStoreOptions(cmd: Command, needs: StoreNeeds): Command {
  cmd
    .addOption(
      flag('--data-dir <dir>', 'LevelDB directory (unused with a PostgreSQL --store)', './data'),
    )
    .addOption(
      flag(
        '--store <url>',
        `a PostgreSQL store instead, e.g. postgres://pkm@db:5432/pkm (no password in it${needs.kek ? '; needs --kek-file' : ''})`,
      ),
    )
    .addOption(flag('--store-password-file <file>', "the PostgreSQL user's password"))
    .addOption(
      flag(
        '--store-ssl-mode <mode>',
        'TLS to PostgreSQL: disable, require or verify-full (as pkm server takes it)',
      ),
    )
    .addOption(flag('--store-ca-file <file>', "PEM CA the database's certificate must chain to"));
  if (needs.kek)
    cmd.addOption(
      flag(
        '--kek-file <file>',
        "the store's KEK (LevelDB default: <data-dir>/kek; required with --store)",
      ),
    );
  return cmd;
}

/**
 * Checks the store flags and reads their files (the password, the CA, the KEK), opening
 * nothing: bad input is refused before any store is touched. The result opens the store;
 * `extraKeks` are tried too (a KEK rotation being resumed).
 */
export async function prepareCommandStore(
  raw: RawFlags,
  needs: StoreNeeds,
): Promise<(extraKeks?: readonly Buffer[]) => Promise<Store | PgStore>> {
  const config = parseStoreConfig(raw, needs.kek);
  const kekFile = needs.kek ? text(raw, 'kekFile') : undefined;
  if (config.kind === 'leveldb') {
    const { dataDir } = config;
    return (extraKeks = []) =>
      Store.open(dataDir, needs.kek ? { kek: kekLoader(dataDir, kekFile), extraKeks } : {});
  }
  const reach = await preparePgReach(config);
  const kek = kekFile === undefined ? undefined : (await loadKek('', kekFile)).kek;
  const presence: PresenceMode | undefined = needs.access === 'alone' ? 'alone' : undefined;
  return (extraKeks = []) =>
    openPgStore(reach, {
      ...(kek === undefined ? {} : { kek: async () => kek, extraKeks }),
      ...(presence === undefined ? {} : { presence }),
    });
}

/**
 * Runs `read` on one instant of the store: a PostgreSQL snapshot (servers may be writing), or
 * a LevelDB store itself (its lock keeps every other writer out).
 */
export function readConsistently<T>(
  store: Store | PgStore,
  read: (view: StoreReads) => Promise<T>,
): Promise<T> {
  return store.concurrentWriters ? store.snapshot(read) : read(store);
}

/** For a command that keeps LevelDB's own format: a coded refusal of --store, with what to do. */
export function refuseStore(raw: RawFlags, command: string, instead: string): void {
  if (text(raw, 'store') === undefined) return;
  throw new PkmError(
    'INVALID_CONFIG',
    `${command} works on a LevelDB --data-dir only, not on a PostgreSQL --store: ${instead}`,
  );
}
