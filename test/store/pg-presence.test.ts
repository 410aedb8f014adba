// The presence lock (src/store/pg/presence.ts) and PgStore.snapshot, on a real PostgreSQL:
// servers share a database, a maintenance command has it alone, neither gets in while the
// other holds it; a restart of the database loses the lock and the server takes it again;
// a snapshot reads one instant while another store commits.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { PRESENCE_LOCK } from '../../src/store/pg/presence.js';
import { onCleanup, testKek } from '../helpers.js';
import { newDatabase, pkmTables } from '../support/pg-databases.js';
import { findPostgres, startPostgres, usePostgres } from '../support/postgres.js';
import { seedKeys } from '../support/seed.js';

const bins = await findPostgres();
const none = { initdb: '', pgCtl: '' };

async function open(url: string, presence?: 'server' | 'alone'): Promise<PgStore> {
  const store = await PgStore.open(url, {
    kek: testKek,
    ...(presence === undefined ? {} : { presence }),
  });
  onCleanup(() => store.close());
  return store;
}

describe.skipIf(bins === undefined)('PostgreSQL presence lock', () => {
  const cluster = usePostgres(bins ?? none);

  it('servers share a database; a maintenance command is refused while any runs, and they while it runs', async () => {
    const url = await newDatabase(cluster(), 'pkm_presence');
    const a = await open(url, 'server');
    const b = await open(url, 'server');
    await expect(open(url, 'alone')).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringMatching(
        /^2 pkm servers are running on this database: stop every server/,
      ),
    });
    await a.close();
    await expect(open(url, 'alone')).rejects.toMatchObject({
      message: expect.stringMatching(/^1 pkm server is running on this database/),
    });
    // Readers take no lock: a check beside running servers.
    const reader = await open(url);
    await reader.close();
    await b.close();

    const alone = await open(url, 'alone');
    await expect(open(url, 'server')).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringMatching(/^a maintenance command .* is running on this database/),
    });
    await expect(open(url, 'alone')).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringMatching(/^a maintenance command/),
    });
    await alone.close();
    await (await open(url, 'server')).close();
  });

  it('a refused open changes nothing: it is refused before the schema is made', async () => {
    await newDatabase(cluster(), 'pkm_presence_empty');
    const url = `postgres://pkm@127.0.0.1:${cluster().port}/pkm_presence_empty`;
    // The lock held exclusively by hand, on a database with no pkm table yet.
    const holder = new pg.Client(cluster().admin('pkm_presence_empty'));
    await holder.connect();
    onCleanup(() => holder.end());
    await holder.query('SELECT pg_advisory_lock($1)', [PRESENCE_LOCK]);
    await expect(open(url, 'server')).rejects.toMatchObject({ code: 'STORE_LOCKED' });
    await expect(open(url, 'alone')).rejects.toMatchObject({ code: 'STORE_LOCKED' });
    expect(await pkmTables(cluster(), 'pkm_presence_empty')).toEqual([]);
  });
});

describe.skipIf(bins === undefined)('PostgreSQL presence lock across a database restart', () => {
  it('is lost with the session, taken again by ping(), and refused if a maintenance command got in first', async () => {
    const own = await startPostgres(bins ?? none);
    onCleanup(() => own.stop());
    const url = await newDatabase(own, 'pkm_presence_restart');
    const server = await open(url, 'server');
    await own.restart();
    // The restart ended every session, the lock's too: a maintenance command now gets in.
    const alone = await open(url, 'alone');
    await expect(server.ping()).rejects.toMatchObject({ code: 'STORE_LOCKED' });
    await alone.close();
    await server.ping();
    await expect(open(url, 'alone')).rejects.toMatchObject({ code: 'STORE_LOCKED' });
  }, 60_000);
});

describe.skipIf(bins === undefined)('PgStore.snapshot', () => {
  const cluster = usePostgres(bins ?? none);

  it('reads one instant: a commit made meanwhile is not seen, by records or counters', async () => {
    const url = await newDatabase(cluster(), 'pkm_snapshot');
    const writer = await open(url);
    await seedKeys(writer, 20);
    const reader = await open(url);
    const seen = await reader.snapshot(async (view) => {
      const before = view.storedCounts();
      // Another store commits 30 more keys while the snapshot is open.
      await seedKeys(writer, 30);
      let records = 0;
      for await (const _ of view.keyRecords()) records++;
      const free = await view.indexEntries('unallocated');
      const report = await checkStore(view);
      return { before, after: view.storedCounts(), records, free: free.length, report };
    });
    expect(seen.before.free).toBe(20);
    expect(seen.after.free).toBe(20);
    expect(seen.records).toBe(20);
    expect(seen.free).toBe(20);
    expect(seen.report).toEqual({ keys: 20, pods: 0, problems: [] });
    // Outside the snapshot, the 50 are there.
    const now = await reader.snapshot(async (view) => checkStore(view));
    expect(now).toEqual({ keys: 50, pods: 0, problems: [] });
  });

  it('ends its transaction whatever the read does', async () => {
    const url = await newDatabase(cluster(), 'pkm_snapshot_throw');
    const store = await PgStore.open(url, { kek: testKek, poolSize: 1 });
    onCleanup(() => store.close());
    await expect(
      store.snapshot(async () => {
        throw new Error('the read failed');
      }),
    ).rejects.toThrow('the read failed');
    // One connection in the pool: it came back, and out of the read-only transaction.
    await seedKeys(store, 3);
    expect(await store.snapshot((view) => checkStore(view))).toMatchObject({ keys: 3 });
  });
});
