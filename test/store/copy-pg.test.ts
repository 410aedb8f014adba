// `pkm db copy` between LevelDB and a real PostgreSQL (issue 15, point 6): there and back again
// to equal snapshots, clean checks and the same secrets; a database that is not empty, or that a
// dead copy left half-written, refused with nothing changed. Skipped only without PostgreSQL.
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { copyStore } from '../../src/store/copy.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { Store } from '../../src/store/store.js';
import { onCleanup, tempDir, testKek } from '../helpers.js';
import { findPostgres, type PgServer, usePostgres } from '../support/postgres.js';
import { freeKey } from './conformance-support.js';
import { fullSnapshot, kekFile, pkmDb, seedStore } from './copy-support.js';

const bins = await findPostgres();
const title = bins
  ? 'pkm db copy with PostgreSQL'
  : 'pkm db copy with PostgreSQL (skipped: PostgreSQL is not installed)';

let databases = 0;
async function newDatabase(server: PgServer): Promise<string> {
  const name = `pkm_copy_${databases++}`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `postgres://pkm@127.0.0.1:${server.port}/${name}`;
}

async function openLevel(dir: string): Promise<Store> {
  const store = await Store.open(dir, { kek: testKek });
  onCleanup(() => store.close());
  return store;
}

async function openPg(url: string): Promise<PgStore> {
  const store = await PgStore.open(url, { kek: testKek });
  onCleanup(() => store.close());
  return store;
}

describe.skipIf(bins === undefined)(title, () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });

  it('LevelDB -> PostgreSQL -> LevelDB: the same state, clean checks, the same secrets', async () => {
    const from = join(await tempDir(), 'from');
    const back = join(await tempDir(), 'back');
    const url = await newDatabase(cluster());
    const kek = await kekFile();
    await seedStore(from);
    const there = await pkmDb(['copy', '--from', from, '--to', url, '--kek-file', kek]);
    expect(there).toMatchObject({ keys: 1207, pods: 2, events: 903, problems: [], to: url });
    const again = await pkmDb(['copy', '--from', url, '--to', back, '--kek-file', kek]);
    expect(again).toMatchObject({ keys: 1207, pods: 2, events: 903, problems: [] });

    const [source, copy, returned] = [
      await openLevel(from),
      await openPg(url),
      await openLevel(back),
    ];
    for (const store of [source, copy, returned])
      expect((await checkStore(store)).problems).toEqual([]);
    const expected = await fullSnapshot(source);
    expect(Object.keys(expected.secrets)).toHaveLength(1207);
    expect(await fullSnapshot(copy)).toEqual(expected);
    expect(await fullSnapshot(returned)).toEqual(expected);
  });

  it('refuses a database that is not empty, changing nothing', async () => {
    const from = join(await tempDir(), 'from');
    await seedStore(from, 0);
    const url = await newDatabase(cluster());
    const existing = await PgStore.open(url, { kek: testKek });
    await existing.commit({ keys: [{ after: freeKey(existing, 99, 5) }], pods: [] });
    const before = await fullSnapshot(existing);
    await existing.close();

    await expect(
      pkmDb(['copy', '--from', from, '--to', url, '--kek-file', await kekFile()]),
    ).rejects.toMatchObject({ code: 'RESTORE_TARGET_NOT_EMPTY' });
    expect(await fullSnapshot(await openPg(url))).toEqual(before);
  });

  it('refuses to copy again into what a copy that died midway left', async () => {
    const from = join(await tempDir(), 'from');
    await seedStore(from);
    const url = await newDatabase(cluster());
    // The copy dies after its third commit (as under kill -9): the target holds part of it.
    const source = await Store.open(from);
    const target = await PgStore.open(url);
    let commits = 0;
    const dying = new Proxy(target, {
      get(t, prop, receiver) {
        if (prop !== 'commit') {
          const value: unknown = Reflect.get(t, prop, receiver);
          return typeof value === 'function' ? value.bind(t) : value;
        }
        return async (...args: Parameters<PgStore['commit']>) => {
          if (++commits > 3) throw new Error('killed');
          return t.commit(...args);
        };
      },
    });
    await expect(copyStore(source, dying)).rejects.toThrow('killed');
    await source.close();
    await target.close();

    const half = await fullSnapshot(await openPg(url));
    expect(half.keys.length).toBeGreaterThan(0);
    await expect(
      pkmDb(['copy', '--from', from, '--to', url, '--kek-file', await kekFile()]),
    ).rejects.toMatchObject({
      code: 'RESTORE_TARGET_NOT_EMPTY',
      message: expect.stringContaining('is not empty'),
    });
    expect(await fullSnapshot(await openPg(url))).toEqual(half);
  });
});
