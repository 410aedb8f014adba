// The store conformance suite on PostgreSQL: one real cluster for this file (usePostgres), and
// a new database (CREATE DATABASE) for every store a test opens, so tests share no state.
// Skipped only where PostgreSQL is not installed.
import pg from 'pg';
import { describe } from 'vitest';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { onCleanup, testKek } from '../helpers.js';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { storeConformance } from './conformance.js';
import type { TestStore } from './conformance-support.js';

const bins = await findPostgres();
const title = bins
  ? 'PostgreSQL store'
  : 'PostgreSQL store (skipped: PostgreSQL is not installed, no initdb on PATH or under /usr/lib/postgresql)';

describe.skipIf(bins === undefined)(title, () => {
  const server = bins ? usePostgres(bins) : () => undefined;
  let made = 0;

  /** A new, empty database on the cluster; its URL. */
  async function newDatabase(): Promise<string> {
    const base = server()?.url ?? '';
    const name = `pkm_conformance_${++made}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    const url = new URL(base);
    url.pathname = `/${name}`;
    return url.toString();
  }

  async function openPg(url: string): Promise<TestStore> {
    const store = await PgStore.open(url, { kek: testKek, poolSize: 4 });
    onCleanup(() => store.close());
    return Object.assign(store, {
      async reopen(): Promise<TestStore> {
        await store.close();
        return openPg(url);
      },
      async reopenAtSchema(version: number): Promise<TestStore> {
        await store.close();
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query('UPDATE pkm_schema SET version = $1', [version]);
        } finally {
          await client.end();
        }
        return openPg(url);
      },
    });
  }

  storeConformance('PostgreSQL', async () => openPg(await newDatabase()));
});
