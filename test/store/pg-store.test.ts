// What is PostgreSQL's own in the PostgreSQL store (the rules are conformance-pg's): its
// tables, the pool index oldest() reads by, the migrations list, and a database that goes
// away mid-burst answered with coded errors, never a crash. The last test stops the cluster.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PkmError } from '../../src/errors.js';
import { SCHEMA_VERSION } from '../../src/store/buckets.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { OLDEST_SQL } from '../../src/store/pg/pool-reads.js';
import { MIGRATIONS } from '../../src/store/pg/schema.js';
import { onCleanup, testKek } from '../helpers.js';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { freeKey, pod } from './conformance-support.js';

const bins = await findPostgres();
const title = bins
  ? 'PostgreSQL store, its own'
  : 'PostgreSQL store, its own (skipped: PostgreSQL is not installed)';

describe.skipIf(bins === undefined)(title, () => {
  const server = bins ? usePostgres(bins) : () => undefined;
  const url = () => server()?.url ?? '';

  async function open(): Promise<PgStore> {
    const store = await PgStore.open(url(), { kek: testKek, connectTimeoutMs: 2_000 });
    onCleanup(() => store.close());
    return store;
  }

  async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []) {
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      return (await client.query<T>(text, params)).rows;
    } finally {
      await client.end();
    }
  }

  it('its migrations end at this SCHEMA_VERSION', () => {
    expect(MIGRATIONS.at(-1)?.to).toBe(SCHEMA_VERSION);
  });

  it('keeps keys, pods, meta and the audit log in tables of their own', async () => {
    await open();
    const tables = await sql<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      'pkm_audit',
      'pkm_keys',
      'pkm_meta',
      'pkm_pods',
      'pkm_schema',
    ]);
    expect(await sql('SELECT version FROM pkm_schema')).toEqual([{ version: SCHEMA_VERSION }]);
  });

  it('oldest() reads the pool index, never the table or a sort', async () => {
    const store = await open();
    const keys = Array.from({ length: 3000 }, (_, n) => freeKey(store, n + 1, 1000 + (n % 700)));
    await store.commit({ keys: keys.map((after) => ({ after })), pods: [] });
    await sql('ANALYZE pkm_keys');
    for (const params of [
      ['unallocated', null, 5],
      ['cooling', 1500, 5],
    ]) {
      const plan = (await sql<{ 'QUERY PLAN': string }>(`EXPLAIN ${OLDEST_SQL}`, params))
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).toMatch(/Index (Only )?Scan using pkm_keys_pool/);
      expect(plan).not.toMatch(/Seq Scan|Sort/);
    }
    expect(await store.oldest('unallocated', 2)).toHaveLength(2);
  }, 60_000);

  it('a database stopped mid-burst answers STORE_UNAVAILABLE (503, Retry-After), never a crash', async () => {
    const store = await open();
    const base = store.storedCounts().free;
    const burst = Array.from({ length: 40 }, (_, i) =>
      store.commit({
        keys: [{ after: freeKey(store, 10_000 + i, 5) }],
        pods: [{ name: `burst-${i}`, after: pod([]) }],
        events: [{ at: 5, type: 'import', pubkeys: [] }],
      }),
    );
    // Heard before the stop: a commit refused while the server stops is a settled outcome.
    const settled = Promise.allSettled(burst);
    await server()?.stop();
    const outcomes = await settled;
    for (const o of outcomes)
      if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // The counters moved for exactly the commits that resolved.
    const done = outcomes.filter((o) => o.status === 'fulfilled').length;
    expect(store.storedCounts().free).toBe(base + done);

    const refused = await store.getKey(freeKey(store, 1, 1).pubkey).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PkmError);
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503, retryAfter: 5 });
    await expect(store.commit({ keys: [], pods: [] })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    await expect(store.oldest('unallocated', 1)).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    await expect(
      PgStore.open(url(), { kek: testKek, connectTimeoutMs: 2_000 }),
    ).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    await store.close();
    expect(store.isOpen).toBe(false);
  }, 60_000);
});
