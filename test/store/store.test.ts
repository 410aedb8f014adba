import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { randomKeySource } from '../../src/keys/source.js';
import { Bucket, MetaKey, SCHEMA_VERSION } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import type { KeyRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { FakeClock, openTempStore, tempDir, testKek } from '../helpers.js';
import { allocatorOver, proving } from '../support/allocator.js';

function freeKey(store: Store, n: number, since: number): KeyRecord {
  return {
    pubkey: `0x${n.toString(16).padStart(96, '0')}`,
    secret: store.secrets.seal(new Uint8Array(32).fill(n), `0x${n.toString(16).padStart(96, '0')}`),
    state: 'free',
    since,
    createdAt: since,
    history: [{ at: since, event: 'created' }],
  };
}

describe('store', () => {
  it('writes the schema version into meta when it creates a store', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir, { kek: testKek });
    await store.close();
    const db = new Level<string, string>(dir);
    const meta = db.sublevel<string, string>(Bucket.meta, {});
    expect(await meta.get(MetaKey.schemaVersion)).toBe(String(SCHEMA_VERSION));
    await db.close();
  });

  it('refuses a store of a newer schema version, with a clear message', async () => {
    const dir = await tempDir();
    await (await Store.open(dir, { kek: testKek })).close();
    const db = new Level<string, string>(dir);
    await db
      .sublevel<string, string>(Bucket.meta, {})
      .put(MetaKey.schemaVersion, String(SCHEMA_VERSION + 1));
    await db.close();
    await expect(Store.open(dir)).rejects.toMatchObject({
      code: 'SCHEMA_TOO_NEW',
      message: expect.stringMatching(/newer than this pkm understands/),
    });
  });

  it('refuses a data dir that another handle holds open', async () => {
    const dir = await tempDir();
    await openTempStore(dir);
    await expect(Store.open(dir)).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringMatching(/already in use by another process/),
    });
  });

  it('commits keys, indexes and counters together, and reads them back after a reopen', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir, { kek: testKek });
    const keys = [freeKey(store, 1, 3000), freeKey(store, 2, 1000), freeKey(store, 3, 2000)];
    await store.commit({ keys: keys.map((after) => ({ after })), pods: [] });
    await store.close();

    const reopened = await openTempStore(dir);
    expect(reopened.storedCounts()).toMatchObject({ free: 3, allocated: 0 });
    const oldest = await reopened.oldest('unallocated', 2);
    expect(oldest.map((e) => e.since)).toEqual([1000, 2000]);
    expect(await reopened.getKey(keys[0]?.pubkey ?? '')).toEqual(keys[0]);
    expect((await checkStore(reopened)).problems).toEqual([]);
  });

  it('writes nothing when one record of a change is invalid (all or nothing)', async () => {
    const store = await openTempStore();
    await store.commit({ keys: [{ after: freeKey(store, 1, 1) }], pods: [] });
    const before = await store.rawEntries();
    const good = freeKey(store, 2, 2);
    const broken = { ...freeKey(store, 3, 3), state: 'allocated' as const }; // allocated needs a pod
    await expect(
      store.commit({
        keys: [{ after: good }, { after: broken }],
        pods: [{ name: 'p', after: { keys: [], cooling: [], since: 1 } }],
      }),
    ).rejects.toThrow(/invalid key record/);
    expect(await store.rawEntries()).toEqual(before);
    expect(store.storedCounts().free).toBe(1);
  });
});

describe('index reads', () => {
  it('still finds a free key inserted older than every key read before', async () => {
    const store = await openTempStore();
    await store.commit({
      keys: [{ after: freeKey(store, 1, 5000) }, { after: freeKey(store, 2, 6000) }],
      pods: [],
    });
    expect((await store.oldest('unallocated', 1)).map((e) => e.since)).toEqual([5000]);
    await store.commit({ keys: [{ after: freeKey(store, 3, 1000) }], pods: [] });
    expect((await store.oldest('unallocated', 3)).map((e) => e.since)).toEqual([1000, 5000, 6000]);
  });

  it('still finds a cooling key released before a cutoff that found none', async () => {
    const store = await openTempStore();
    const cooling = (n: number, since: number): KeyRecord => ({
      ...freeKey(store, n, since),
      state: 'cooling',
      pod: 'p',
    });
    await store.commit({
      keys: [{ after: cooling(1, 9000) }],
      pods: [{ name: 'p', after: { keys: [], cooling: [cooling(1, 9000).pubkey], since: 1 } }],
    });
    expect(await store.oldest('cooling', 5, 8000)).toEqual([]);
    await store.commit({ keys: [{ after: cooling(2, 100) }], pods: [] });
    expect((await store.oldest('cooling', 5, 8000)).map((e) => e.since)).toEqual([100]);
    expect((await store.oldest('cooling', 1))[0]?.since).toBe(100);
  });
});

describe('schema migration', () => {
  it('migrates a version 1 store to the current version, keeping its counters', async () => {
    const dir = await tempDir();
    const db = new Level<string, string>(dir);
    const meta = db.sublevel<string, string>(Bucket.meta, {});
    await meta.put(MetaKey.schemaVersion, '1');
    await meta.put(
      MetaKey.counts,
      JSON.stringify({ free: 0, allocated: 0, cooling: 0, retired: 0, pods: 0 }),
    );
    await db.close();
    const store = await openTempStore(dir);
    expect(store.storedCounts()).toEqual({
      free: 0,
      allocated: 0,
      cooling: 0,
      retired: 0,
      depositing: 0,
      'deposit-failed': 0,
      conflict: 0,
      reported: 0,
      fenced: 0,
      pods: 0,
    });
    const raw = Object.fromEntries(await store.rawEntries());
    expect(raw[`!${Bucket.meta}!${MetaKey.schemaVersion}`]).toBe(String(SCHEMA_VERSION));
  });

  it('migrates a version 4 store: each pod lists the keys reported by it, and the store checks clean', async () => {
    const dir = await tempDir();
    let store = await openTempStore(dir);
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource);
    const lost = [randomKey().pubkey, randomKey().pubkey];
    expect((await al.heartbeat('b', lost, proving(lost))).reported).toEqual(lost);
    await store.close();
    // Back to version 4: pod records had no reported list then.
    const db = new Level<string, string>(dir);
    const pods = db.sublevel<string, string>(Bucket.pods, {});
    const b = JSON.parse((await pods.get('b')) ?? '{}') as { reported?: string[] };
    expect(b.reported?.sort()).toEqual([...lost].sort());
    delete b.reported;
    await pods.del('b'); // a pod with nothing but reported keys had no record at all
    await db.sublevel<string, string>(Bucket.meta, {}).put(MetaKey.schemaVersion, '4');
    await db.close();
    store = await openTempStore(dir);
    expect([...((await store.getPod('b'))?.reported ?? [])].sort()).toEqual([...lost].sort());
    expect((await checkStore(store)).problems).toEqual([]);
  });
});
