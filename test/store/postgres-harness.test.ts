// The PostgreSQL test harness itself: a real cluster starts, takes a durable transaction, and
// stops; it restarts (and crashes) on the same data and port, for the fault tests; it asks TCP
// clients for a password or TLS when told to. Skipped only where PostgreSQL is not installed
// (.ci/run installs it, so CI runs it).
import { existsSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { onCleanup, tempDir } from '../helpers.js';
import { makeCert } from '../support/certs.js';
import { findPostgres, type PgServer, startPostgres, usePostgres } from '../support/postgres.js';

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

async function rowsOf(url: string | pg.ClientConfig): Promise<string[]> {
  const client = new pg.Client(typeof url === 'string' ? { connectionString: url } : url);
  await client.connect();
  try {
    const res = await client.query<{ k: string }>('SELECT k FROM kept ORDER BY k');
    return res.rows.map((r) => r.k);
  } finally {
    await client.end();
  }
}

/** Whether a client with this config gets a query through: true, or the error's message. */
async function answers(config: pg.ClientConfig): Promise<true | string> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe.skipIf(bins === undefined)('PostgreSQL test harness: stop and start again', () => {
  it('restart() and a crash (immediate stop) keep the data and the port; stop() twice is safe', async () => {
    const cluster: PgServer = await startPostgres(bins ?? { initdb: '', pgCtl: '' });
    onCleanup(() => cluster.stop());
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query('CREATE TABLE kept (k text PRIMARY KEY)');
    await admin.query("INSERT INTO kept VALUES ('before-restart')");

    // A session open across the restart is lost: the server really went away.
    const lost = new Promise<Error>((resolve) => admin.on('error', resolve));
    await cluster.restart();
    expect((await lost).message).toMatch(/terminat|shut ?down|connection/i);
    await admin.end().catch(() => undefined);
    expect(cluster.url).toBe(`postgres://pkm@127.0.0.1:${cluster.port}/postgres`);
    expect(await rowsOf(cluster.url)).toEqual(['before-restart']);

    // Committed, then the server killed with no checkpoint: the WAL brings the row back.
    const writer = new pg.Client({ connectionString: cluster.url });
    await writer.connect();
    writer.on('error', () => undefined);
    await writer.query("INSERT INTO kept VALUES ('before-crash')");
    await cluster.stopServer('immediate');
    expect(await answers({ connectionString: cluster.url })).toMatch(/ECONNREFUSED/);
    await writer.end().catch(() => undefined);
    await cluster.startServer();
    expect(await rowsOf(cluster.url)).toEqual(['before-crash', 'before-restart']);

    // The socket's folder is the cluster's own: stop() removes it, and a second stop() is a no-op.
    const home = String(cluster.admin().host);
    expect(existsSync(home)).toBe(true);
    await cluster.stop();
    await cluster.stop();
    expect(await answers({ connectionString: cluster.url })).toMatch(/ECONNREFUSED/);
    expect(existsSync(home)).toBe(false);
  }, 90_000);
});

describe.skipIf(bins === undefined)('PostgreSQL test harness: a password and TLS', () => {
  it('asks TCP clients for the password (scram-sha-256) and, TLS only, refuses cleartext', async () => {
    const dir = await tempDir();
    const { cert, key } = await makeCert(dir, 'db');
    const password = 'harness-pw-71f3';
    const cluster = await startPostgres(bins ?? { initdb: '', pgCtl: '' }, {
      password,
      tls: { cert, key, only: true },
    });
    onCleanup(() => cluster.stop());
    const tcp = { host: '127.0.0.1', port: cluster.port, user: 'pkm', database: 'postgres' };
    const tls = { rejectUnauthorized: false };
    expect(await answers({ ...tcp, password, ssl: tls })).toBe(true);
    expect(await answers({ ...tcp, password: 'wrong', ssl: tls })).toMatch(
      /password authentication failed/,
    );
    expect(await answers({ ...tcp, password, ssl: false })).toMatch(/no encryption/);
    // The socket stays open to the harness, with no password, for setting up.
    expect(await answers(cluster.admin())).toBe(true);
    await cluster.restart();
    expect(await answers({ ...tcp, password, ssl: tls })).toBe(true);
  }, 90_000);
});
