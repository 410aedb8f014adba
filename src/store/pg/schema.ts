// The PostgreSQL schema, as versioned migrations run in one transaction when the store opens.
// Versions share SCHEMA_VERSION with the LevelDB store: a version names the record shapes (the
// codecs of records.ts) and the tables that hold them. A PostgreSQL store began at version 5,
// so its first migration makes the tables at once; a later shape change bumps SCHEMA_VERSION
// and adds one migration here and one in ../schema.ts.
import type pg from 'pg';
import { z } from 'zod';
import { PkmError } from '../../errors.js';
import { MetaKey, SCHEMA_VERSION } from '../buckets.js';
import { countsCodec, ZERO_COUNTS } from '../records.js';
import { parseOne } from './rows.js';

export interface Migration {
  /** The version the store is at once this migration ran. */
  readonly to: number;
  readonly statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    to: 5,
    statements: [
      // COLLATE "C": names and pubkeys sort bytewise, as LevelDB lists them.
      `CREATE TABLE pkm_meta (
         key text COLLATE "C" PRIMARY KEY,
         value text NOT NULL)`,
      // record: keyRecordCodec's JSON. pool and since are derived by the store from the record
      // (free -> unallocated, cooling -> cooling), for the pool index below.
      `CREATE TABLE pkm_keys (
         pubkey text COLLATE "C" PRIMARY KEY,
         record text NOT NULL,
         pool text CHECK (pool IN ('unallocated', 'cooling')),
         since bigint NOT NULL)`,
      // The pool indexes: oldest(index, limit, atOrBefore) is an index range scan of `limit`
      // rows; keys in no pool (most of a busy store) are not in it at all.
      `CREATE INDEX pkm_keys_pool ON pkm_keys (pool, since, pubkey) WHERE pool IS NOT NULL`,
      `CREATE TABLE pkm_pods (
         name text COLLATE "C" PRIMARY KEY,
         record text NOT NULL)`,
      // The audit log: seq numbered 0, 1, 2... in commit order; type copied out of the event
      // for lastEvents.
      `CREATE TABLE pkm_audit (
         seq bigint PRIMARY KEY CHECK (seq >= 0),
         type text NOT NULL,
         event text NOT NULL)`,
    ],
  },
  // 6: key records may carry `heldUntil` (records.ts), and the pools are split into 16 lanes
  // by the pubkey's last hex digit: a server prefers its own lane when it picks (pg-store.ts
  // oldest), so servers picking at once seldom pick the same keys.
  {
    to: 6,
    statements: [
      `CREATE INDEX pkm_keys_lane ON pkm_keys (pool, (right(pubkey, 1)), since, pubkey)
         WHERE pool IS NOT NULL`,
    ],
  },
  // 7: key records may carry `leaving` and `settings`, and the audit log the events of live
  // moves (issue 16): the record text only gains fields, so only the version moves (an older
  // pkm then refuses the database instead of misreading it).
  { to: 7, statements: [] },
];

/** The one row of pkm_schema holds the version; made by the first migration run. */
const VERSION_TABLE = `CREATE TABLE pkm_schema (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL)`;

/** Any key: serializes servers that open the same database at once (one migrates). */
const MIGRATION_LOCK = 0x706b6d00;

const VersionRow = z.object({ version: z.number().int() });
const Exists = z.object({ present: z.string().nullable() });

/**
 * Checks the schema version, and migrates an older (or an empty) database, all in one
 * transaction on `client`: a crash leaves the database at either version, never between.
 */
export async function migrate(client: pg.PoolClient): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SET LOCAL synchronous_commit = on');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    let version = await storedVersion(client);
    if (version > SCHEMA_VERSION) {
      throw new PkmError(
        'SCHEMA_TOO_NEW',
        `the store has schema version ${version}, newer than this pkm understands (${SCHEMA_VERSION}): run a newer pkm`,
      );
    }
    if (version === 0) {
      await client.query(VERSION_TABLE);
      await client.query('INSERT INTO pkm_schema (version) VALUES (0)');
    }
    for (const m of MIGRATIONS) {
      if (m.to <= version) continue;
      if (version !== 0 && m.to !== version + 1)
        throw new PkmError('STORE_CORRUPT', `no migration from schema version ${version}`);
      for (const sql of m.statements) await client.query(sql);
      if (version === 0) {
        // A new store starts with zero counters, as LevelDB's does.
        await client.query('INSERT INTO pkm_meta (key, value) VALUES ($1, $2)', [
          MetaKey.counts,
          countsCodec.encode(ZERO_COUNTS),
        ]);
      }
      version = m.to;
    }
    await client.query('UPDATE pkm_schema SET version = $1', [version]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The stored version; 0 for a database without pkm's tables. */
async function storedVersion(client: pg.PoolClient): Promise<number> {
  const exists = await client.query("SELECT to_regclass('pkm_schema')::text AS present");
  if (parseOne(Exists, exists.rows, 'catalog').present === null) {
    const other = await client.query("SELECT to_regclass('pkm_keys')::text AS present");
    if (parseOne(Exists, other.rows, 'catalog').present !== null)
      throw new PkmError('STORE_CORRUPT', 'the database holds pkm tables but no schema version');
    return 0;
  }
  const rows = await client.query('SELECT version FROM pkm_schema');
  const { version } = parseOne(VersionRow, rows.rows, 'schema version');
  if (version < 1)
    throw new PkmError('STORE_CORRUPT', `the store's schema version "${version}" is not a version`);
  return version;
}
