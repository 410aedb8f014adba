// The store and allocation rule tests on both backends (issue 15, point 2: "every existing store
// and allocation test that is about the rules, not about LevelDB, runs on both"). A test file
// declares its tests once, inside eachBackend(); they run on a temp LevelDB and on a real
// PostgreSQL: one cluster per test file (usePostgres), and a database of its own for every store
// a test opens, put back as new after the test, so tests share no state.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { PkmError } from '../../src/errors.js';
import { backupStore, restoreStore } from '../../src/store/backup.js';
import { checkStore } from '../../src/store/check.js';
import type { StoreContract } from '../../src/store/contract.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { Store } from '../../src/store/store.js';
import { onCleanup, testKek } from '../helpers.js';
import { findPostgres, type PgServer, usePostgres } from './postgres.js';

export type BackendName = 'LevelDB' | 'PostgreSQL';

/** How a store is opened: as both backends' own options say (default: the tests' KEK). */
export interface OpenOptions {
  readonly kek?: (hasDataKey: boolean) => Promise<Buffer>;
  readonly extraKeks?: readonly Buffer[];
}

/**
 * Everything a store holds, read past the contract, entry by entry: LevelDB's every key and
 * value; PostgreSQL's every row of every pkm_ table, as [`table!first column`, the row as
 * JSON]. Equal before and after an operation: the store is byte-identical, as if nothing had
 * been written.
 */
export type RawEntries = ReadonlyArray<readonly [string, string]>;

/** Where one store keeps its data: a folder, or a database. */
export interface StorePlace {
  /** Opens the store kept here (new and empty the first time); closed after the test. */
  open(opts?: OpenOptions): Promise<StoreContract>;
  /** What is stored here (see RawEntries), whether a store is open here or not. */
  raw(): Promise<RawEntries>;
  /**
   * A copy of what is stored here now, the store closed: LevelDB's `pkm db backup` file, or
   * (pkm having no backup of its own for PostgreSQL) every row of every pkm_ table, as a
   * data-only dump of the database gives them.
   */
  backup(): Promise<StoreBackup>;
  /**
   * Deletes the folder, or puts the database back as new for another place (done after the
   * test anyway); safe twice.
   */
  remove(): Promise<void>;
}

export interface StoreBackup {
  /**
   * The backup restored into a new place as `pkm db restore` does it: `prepare` runs on the
   * restored store (opened without a KEK), then every invariant check; a failed check throws.
   */
  restore(
    prepare: (store: StoreContract) => Promise<number>,
  ): Promise<{ place: StorePlace; fenced: number }>;
  remove(): Promise<void>;
}

export interface Backend {
  readonly name: BackendName;
  /** A place no store has used yet; removed after the test. */
  place(): Promise<StorePlace>;
  /** A new store in a new place (the openTempStore of both backends). */
  open(opts?: OpenOptions): Promise<StoreContract>;
}

const bins = await findPostgres();

/**
 * Declares `suite` once per backend, each in a describe block named after it. PostgreSQL is
 * skipped only where it is not installed (CI installs it: issue 15, point 9).
 */
export function eachBackend(suite: (backend: Backend) => void): void {
  onBackend('LevelDB', suite);
  onBackend('PostgreSQL', suite);
}

/**
 * Declares `suite` on one backend: for a suite long enough that each backend gets a test file
 * of its own, so that vitest runs the two at once (one per worker).
 */
export function onBackend(name: BackendName, suite: (backend: Backend) => void): void {
  if (name === 'LevelDB') {
    describe('LevelDB', () => suite(levelBackend));
    return;
  }
  const title = bins ? 'PostgreSQL' : 'PostgreSQL (skipped: PostgreSQL is not installed)';
  describe.skipIf(bins === undefined)(title, () => {
    if (bins) suite(pgBackend(usePostgres(bins)));
  });
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= fn();
    return done;
  };
}

// --- LevelDB: a temp folder per place. ---

async function levelDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-test-'));
  const remove = onceOnly(() => rm(dir, { recursive: true, force: true }));
  onCleanup(remove);
  return { dir, remove };
}

function levelPlace(dir: string, remove: () => Promise<void>): StorePlace {
  let opened: Store | undefined;
  return {
    async open(opts = {}) {
      const store = await Store.open(dir, { kek: opts.kek ?? testKek, ...extra(opts) });
      onCleanup(() => store.close());
      opened = store;
      return store;
    },
    async raw() {
      // LevelDB locks its folder: read through the store open here, if any.
      if (opened?.isOpen) return opened.rawEntries();
      const store = await Store.open(dir);
      try {
        return await store.rawEntries();
      } finally {
        await store.close();
      }
    },
    async backup() {
      const { dir: folder, remove: removeFolder } = await levelDir();
      const file = join(folder, 'backup.jsonl');
      await backupStore(dir, file);
      return {
        async restore(prepare) {
          const to = await levelDir();
          const data = join(to.dir, 'data');
          const { fenced } = await restoreStore(data, file, prepare);
          return { place: levelPlace(data, to.remove), fenced };
        },
        remove: removeFolder,
      };
    },
    remove,
  };
}

const levelBackend: Backend = {
  name: 'LevelDB',
  async place() {
    const { dir, remove } = await levelDir();
    return levelPlace(dir, remove);
  },
  async open(opts) {
    return (await this.place()).open(opts);
  },
};

function extra(opts: OpenOptions): { extraKeks?: readonly Buffer[] } {
  return opts.extraKeks ? { extraKeks: opts.extraKeks } : {};
}

// --- PostgreSQL: a database per place, on this file's cluster. ---

function pgBackend(server: () => PgServer): Backend {
  let made = 0;
  /** Databases released by earlier places, ready for the next. */
  const idle: string[] = [];
  /** What the store's migration leaves in a new database's tables. */
  let fresh: TableDump | undefined;
  /**
   * One connection per database for the fixture's own reads and writes (a new connection costs
   * a forked server process, 10 to 20 ms here), and one to `postgres` to make databases; all
   * ended before the cluster stops (after-hooks run last registered first).
   */
  const clients = new Map<string, Promise<pg.Client>>();
  afterAll(async () => {
    for (const client of clients.values()) await (await client).end().catch(() => undefined);
  });

  function clientOf(database: string): Promise<pg.Client> {
    let client = clients.get(database);
    if (!client) {
      const opened = new pg.Client({ connectionString: urlOf(database) });
      opened.on('error', () => clients.delete(database)); // the next use connects again
      client = opened.connect().then(() => opened);
      clients.set(database, client);
    }
    return client;
  }

  async function adminQuery(sql: string): Promise<void> {
    await (await clientOf('postgres')).query(sql);
  }

  function urlOf(database: string): string {
    const url = new URL(server().url);
    url.pathname = `/${database}`;
    return url.toString();
  }

  /**
   * A new database, migrated by the store's own code (opened without a KEK, nothing written
   * but the schema version and zero counters). The first one's rows are kept as `fresh`.
   */
  async function newDatabase(): Promise<string> {
    const name = `pkm_t${++made}`;
    await adminQuery(`CREATE DATABASE ${name}`);
    await (await PgStore.open(urlOf(name))).close();
    fresh ??= await dumpTables(await clientOf(name));
    return name;
  }

  /**
   * Puts a database back as new: every connection to it ended (a store a failed test left
   * open must not write into the next test's store), and its tables given back the rows of a
   * new one. Making a database and dropping it costs 300 ms or more here (a 7 MB copy of
   * template1, written and synced), this about 10 ms; the store then finds what a new store
   * made and never used holds.
   */
  async function release(name: string): Promise<void> {
    const rows = fresh;
    if (rows === undefined) throw new Error('no database was made');
    const client = await clientOf(name);
    await client.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    await loadTables(client, rows);
    idle.push(name);
  }

  /** A database of its own, as new, released after the test (or by `release`). */
  async function database(): Promise<{ name: string; release: () => Promise<void> }> {
    const name = idle.pop() ?? (await newDatabase());
    const done = onceOnly(() => release(name));
    onCleanup(done);
    return { name, release: done };
  }

  /** Opens the store in `name` with pkm server's defaults (pool size, timeouts). */
  async function openPg(name: string, opts: OpenOptions | undefined): Promise<PgStore> {
    const store = await PgStore.open(
      urlOf(name),
      opts === undefined ? {} : { kek: opts.kek ?? testKek, ...extra(opts) },
    );
    onCleanup(() => store.close());
    return store;
  }

  /** A backup of the database `name`: its pkm_ tables, restored as restoreStore does. */
  async function backupOf(name: string): Promise<StoreBackup> {
    const tables = await dumpTables(await clientOf(name));
    return {
      async restore(prepare) {
        // The backup's rows put into a new database, then (as restoreStore does) opened
        // without a KEK, prepared and checked.
        const to = await database();
        await loadTables(await clientOf(to.name), tables);
        const store = await openPg(to.name, undefined);
        try {
          const fenced = await prepare(store);
          const { problems } = await checkStore(store);
          if (problems.length > 0)
            throw new PkmError('INVALID_BACKUP', `restores to a failing store: ${problems[0]}`);
          return { place: pgPlace(to.name, to.release), fenced };
        } finally {
          await store.close();
        }
      },
      remove: async () => undefined,
    };
  }

  function pgPlace(name: string, remove: () => Promise<void>): StorePlace {
    return {
      open: (opts = {}) => openPg(name, opts),
      raw: async () => rawRows(await clientOf(name)),
      backup: () => backupOf(name),
      remove,
    };
  }

  return {
    name: 'PostgreSQL',
    async place() {
      const { name, release: done } = await database();
      return pgPlace(name, done);
    },
    async open(opts) {
      return (await this.place()).open(opts);
    },
  };
}

async function pkmTables(client: pg.Client): Promise<string[]> {
  const res = await client.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'public' AND table_name LIKE 'pkm\\_%' ORDER BY 1`,
  );
  return res.rows.map((r) => r.name);
}

/** Every row of every pkm_ table, by table, then by its first column (its key). */
async function rawRows(client: pg.Client): Promise<RawEntries> {
  const entries: Array<readonly [string, string]> = [];
  for (const name of await pkmTables(client)) {
    const rows = await client.query<Record<string, unknown>>(
      `SELECT * FROM ${client.escapeIdentifier(name)} ORDER BY 1`,
    );
    for (const row of rows.rows)
      entries.push([`${name}!${String(Object.values(row)[0])}`, JSON.stringify(row)]);
  }
  return entries;
}

/** Each pkm_ table's name and rows, as the database writes them in JSON. */
type TableDump = ReadonlyArray<readonly [string, string]>;

/** Every pkm_ table's rows, in one snapshot. */
async function dumpTables(client: pg.Client): Promise<TableDump> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    const dump: Array<readonly [string, string]> = [];
    for (const name of await pkmTables(client)) {
      const t = client.escapeIdentifier(name);
      const res = await client.query<{ rows: string }>(
        `SELECT coalesce(json_agg(t), '[]')::text AS rows FROM ${t} t`,
      );
      dump.push([name, res.rows[0]?.rows ?? '[]']);
    }
    return dump;
  } finally {
    await client.query('COMMIT');
  }
}

/** Replaces every row of the dumped tables with the dump's, in one transaction. */
async function loadTables(client: pg.Client, dump: TableDump): Promise<void> {
  await client.query('BEGIN');
  try {
    for (const [name, rows] of dump) {
      const t = client.escapeIdentifier(name);
      await client.query(`DELETE FROM ${t}`);
      await client.query(`INSERT INTO ${t} SELECT * FROM json_populate_recordset(NULL::${t}, $1)`, [
        rows,
      ]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}
