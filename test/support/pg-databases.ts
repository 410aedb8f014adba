// Databases on a test cluster, made and inspected through its Unix socket (the harness's own
// door, trust whatever TCP asks), so a test of passwords and TLS sets up without either.
import pg from 'pg';
import type { PgServer } from './postgres.js';

async function asAdmin<T>(
  server: PgServer,
  database: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(server.admin(database));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new database, and its URL for the superuser `pkm` over TCP (no password in it). */
export async function newDatabase(server: PgServer, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  await asAdmin(server, 'postgres', (c) => c.query(`CREATE DATABASE ${name}`));
  return `postgres://pkm@127.0.0.1:${server.port}/${name}`;
}

/** The pkm_* tables of a database: none until a store was opened in it. */
export async function pkmTables(server: PgServer, database: string): Promise<string[]> {
  return asAdmin(server, database, async (c) => {
    const res = await c.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'pkm\\_%' ORDER BY 1",
    );
    return res.rows.map((r) => r.name);
  });
}

/** How many sessions on `database` are encrypted, and how many are not (pg_stat_ssl). */
export async function sessionsByTls(
  server: PgServer,
  database: string,
): Promise<{ tls: number; clear: number }> {
  return asAdmin(server, 'postgres', async (c) => {
    const res = await c.query<{ ssl: boolean; n: number }>(
      `SELECT s.ssl, count(*)::int AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
       WHERE a.datname = $1 AND a.client_addr IS NOT NULL GROUP BY s.ssl`,
      [database],
    );
    const count = (ssl: boolean) => res.rows.find((r) => r.ssl === ssl)?.n ?? 0;
    return { tls: count(true), clear: count(false) };
  });
}

/** Runs SQL as the superuser on `database` (for a test that reads or damages tables). */
export function adminQuery<T extends pg.QueryResultRow>(
  server: PgServer,
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  return asAdmin(server, database, (c) => c.query<T>(sql, params));
}
