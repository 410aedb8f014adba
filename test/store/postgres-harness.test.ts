// The PostgreSQL test harness itself: a real cluster starts, takes a durable transaction, and
// stops. Skipped only where PostgreSQL is not installed (.ci/run installs it, so CI runs it).
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { findPostgres, usePostgres } from '../support/postgres.js';

const bins = await findPostgres();
const title = bins
  ? 'PostgreSQL test harness'
  : 'PostgreSQL test harness (skipped: PostgreSQL is not installed, no initdb on PATH or under /usr/lib/postgresql)';

describe.skipIf(bins === undefined)(title, () => {
  const server = bins ? usePostgres(bins) : () => undefined;

  it('serves a loopback cluster with synchronous_commit on, and commits and rolls back', async () => {
    const url = server()?.url ?? '';
    expect(url).toMatch(/^postgres:\/\/pkm@127\.0\.0\.1:\d+\/postgres$/);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const shown = await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      expect(shown.rows[0]?.synchronous_commit).toBe('on');
      const fsync = await client.query<{ fsync: string }>('SHOW fsync');
      expect(fsync.rows[0]?.fsync).toBe('on');
      await client.query('CREATE TABLE t (k text PRIMARY KEY, v integer NOT NULL)');
      await client.query('BEGIN');
      await client.query("INSERT INTO t VALUES ('a', 1), ('b', 2)");
      await client.query('COMMIT');
      await client.query('BEGIN');
      await client.query("INSERT INTO t VALUES ('c', 3)");
      await client.query('ROLLBACK');
      const rows = await client.query<{ k: string; v: number }>('SELECT k, v FROM t ORDER BY k');
      expect(rows.rows).toEqual([
        { k: 'a', v: 1 },
        { k: 'b', v: 2 },
      ]);
    } finally {
      await client.end();
    }
  }, 30_000);
});
