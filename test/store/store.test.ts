import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { randomKeySource } from '../../src/keys/source.js';
import { Bucket, MetaKey, SCHEMA_VERSION } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { Store } from '../../src/store/store.js';
import { FakeClock, openTempStore, tempDir, testKek } from '../helpers.js';
import { allocatorOver, proving } from '../support/allocator.js';
import { freeKey } from './conformance-support.js';

// The rules every backend keeps are in conformance.ts; these are LevelDB's own: its buckets,
// its lock, its migrations.
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

  it('writes a commit that comes while another is being written after it: nothing lost, nothing numbered twice', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir, { kek: testKek });
    const event = (pod: string) => ({ at: 1, type: 'release' as const, pod, pubkeys: [] });
    const commits = [1, 2, 3].map((n) =>
      store.commit({
        keys: [{ after: freeKey(store, n, 1) }],
        pods: [],
        events: [event(`p${n}`)],
      }),
    );
    // One that fails (a key change that changes its pubkey) neither stops the next nor leaves
    // anything behind.
    const bad = freeKey(store, 9, 1);
    const refused = store.commit({
      keys: [{ before: bad, after: { ...bad, pubkey: freeKey(store, 8, 1).pubkey } }],
      pods: [],
      events: [event('bad')],
    });
    const last = store.commit({ keys: [], pods: [], events: [event('p4')] });
    await Promise.all(commits);
    await expect(refused).rejects.toMatchObject({ code: 'INTERNAL' });
    await last;
    expect(store.storedCounts().free).toBe(3);
    const seen = async (s: Store) => (await s.events(0, 10)).map((e) => [e.seq, e.pod]);
    const expected = [
      [0, 'p1'],
      [1, 'p2'],
      [2, 'p3'],
      [3, 'p4'],
    ];
    expect(await seen(store)).toEqual(expected);
    await store.close();
    const reopened = await Store.open(dir, { kek: testKek });
    expect(reopened.storedCounts().free).toBe(3);
    expect(await seen(reopened)).toEqual(expected);
    await reopened.close();
  });

  it('keeps meta values it read or wrote, and never one a racing write replaced', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir, { kek: testKek });
    const key = MetaKey.genesisValidatorsRoot;
    expect(await store.getMeta(key)).toBeUndefined();
    // Reads started before, during and after each write: the value read last is the last one
    // written, from the store kept in memory and from the disk alike.
    for (let i = 0; i < 50; i++) {
      const reads = [store.getMeta(key)];
      const write = store.commit({ keys: [], pods: [], meta: [[key, `root-${i}`]] });
      reads.push(store.getMeta(key));
      await write;
      reads.push(store.getMeta(key));
      const [, , after] = await Promise.all(reads);
      expect(after).toBe(`root-${i}`);
    }
    expect(await store.getMeta(key)).toBe('root-49');
    await store.close();
    const db = new Level<string, string>(dir);
    expect(await db.sublevel<string, string>(Bucket.meta, {}).get(key)).toBe('root-49');
    await db.close();
  });

  it('in the tests, a record the cache keeps is frozen through and through (PKM_FREEZE_RECORDS)', async () => {
    // vitest.config.ts sets it, so that a change of a shared record in place throws in a test.
    expect(process.env.PKM_FREEZE_RECORDS).toBe('1');
    const store = await Store.open(await tempDir(), { kek: testKek });
    const written = freeKey(store, 1, 1);
    await store.commit({ keys: [{ after: written }], pods: [] });
    const read = await store.getKey(written.pubkey);
    expect(read).toBe(written);
    // Past the types, as Object.assign reaches it: the freeze refuses.
    expect(() => Object.assign(read ?? {}, { state: 'allocated' })).toThrow(TypeError);
    expect(Object.isFrozen(read?.history)).toBe(true);
    expect(Object.isFrozen(read?.history[0])).toBe(true);
    expect(Object.isFrozen(read?.secret)).toBe(true);
    await store.close();
  });

  it('refuses a data dir that another handle holds open', async () => {
    const dir = await tempDir();
    await openTempStore(dir);
    await expect(Store.open(dir)).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      message: expect.stringMatching(/already in use by another process/),
    });
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
