// The LevelDB store's scans (issue 17, point 5): pods() and keyRecords() read in batches, and
// pods() serves records from the store's cache, filling it only while it has room. A listing
// must show every commit before it, whether the record came from the cache or from disk.
import { describe, expect, it } from 'vitest';
import { RecordCache } from '../../src/store/cache.js';
import type { PodRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { openTempStore, tempDir, testKek } from '../helpers.js';

const pubkey = (i: number) => `0x${i.toString(16).padStart(96, '0')}`;
const pod = (keys: string[], since = 1): PodRecord => ({ keys, cooling: [], since });

async function listing(store: Store): Promise<Array<[string, PodRecord]>> {
  const out: Array<[string, PodRecord]> = [];
  for await (const entry of store.pods()) out.push(entry);
  return out;
}

describe('store scans', () => {
  it('lists more pods than one batch, in name order, and the same again from the cache', async () => {
    const store = await openTempStore();
    const names = Array.from({ length: 2500 }, (_, i) => `p-${String(i).padStart(5, '0')}`);
    await store.commit({
      keys: [],
      pods: names.map((name, i) => ({ name, after: pod([pubkey(i)]) })),
    });
    const first = await listing(store);
    expect(first.map(([name]) => name)).toEqual(names);
    expect(first[1234]?.[1].keys).toEqual([pubkey(1234)]);
    expect(await listing(store)).toEqual(first);
    // From a given name on, as the page's cursor asks.
    const after = [];
    for await (const [name] of store.pods({ after: 'p-02497' })) after.push(name);
    expect(after).toEqual(['p-02498', 'p-02499']);
  });

  it('shows every commit made before a listing, cached or not', async () => {
    const dir = await tempDir();
    let store = await Store.open(dir, { kek: testKek });
    await store.commit({
      keys: [],
      pods: [
        { name: 'a', after: pod([pubkey(1)]) },
        { name: 'b', after: pod([pubkey(2)]) },
      ],
    });
    await store.close();
    store = await Store.open(dir, { kek: testKek });
    try {
      expect((await listing(store)).map(([, p]) => p.keys)).toEqual([[pubkey(1)], [pubkey(2)]]);
      // Both are cached now; a commit changes one and removes the other.
      const a = await store.getPod('a');
      const b = await store.getPod('b');
      await store.commit({
        keys: [],
        pods: [
          { name: 'a', ...(a ? { before: a } : {}), after: pod([pubkey(1), pubkey(3)], 2) },
          { name: 'b', ...(b ? { before: b } : {}) },
        ],
      });
      expect(await listing(store)).toEqual([['a', pod([pubkey(1), pubkey(3)], 2)]]);
    } finally {
      await store.close();
    }
    // And from disk, after a restart.
    store = await Store.open(dir, { kek: testKek });
    expect(await listing(store)).toEqual([['a', pod([pubkey(1), pubkey(3)], 2)]]);
    await store.close();
  });

  it('yields each pod as it is when yielded, though its batch was looked up before', async () => {
    // Not every pod cached: the listing reads LevelDB, batch by batch. It waits for a slow
    // reader between pods; what commits meanwhile shows. Without
    // it, a pod released meanwhile kept its keys in the listing, and a pod given those keys
    // listed them too: one key under two pods (the helper's review of 00e5fe3).
    const dir = await tempDir();
    let store = await Store.open(dir, { kek: testKek });
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    await store.commit({
      keys: [],
      pods: names.map((name, i) => ({ name, after: pod([pubkey(i)]) })),
    });
    await store.close();
    store = await Store.open(dir, { kek: testKek });
    try {
      // b and d cached, c, e and f read from disk by the batch.
      const cachedB = await store.getPod('b');
      const cachedD = await store.getPod('d');
      const scan = store.pods()[Symbol.asyncIterator]();
      expect((await scan.next()).value).toEqual(['a', pod([pubkey(0)])]);
      // The whole batch was looked up. Now b's key moves to c, d is removed, e grows.
      await store.commit({
        keys: [],
        pods: [
          { name: 'b', ...(cachedB ? { before: cachedB } : {}), after: pod([], 2) },
          { name: 'c', before: pod([pubkey(2)]), after: pod([pubkey(2), pubkey(1)], 2) },
          { name: 'd', ...(cachedD ? { before: cachedD } : {}) },
          { name: 'e', before: pod([pubkey(4)]), after: pod([pubkey(4), pubkey(9)], 2) },
        ],
      });
      const rest: Array<[string, PodRecord]> = [];
      for (let next = await scan.next(); !next.done; next = await scan.next())
        rest.push(next.value);
      expect(rest).toEqual([
        ['b', pod([], 2)],
        ['c', pod([pubkey(2), pubkey(1)], 2)],
        ['e', pod([pubkey(4), pubkey(9)], 2)],
        ['f', pod([pubkey(5)])],
      ]);
    } finally {
      await store.close();
    }
  });

  it('lists one instant when the cache holds every pod, whatever commits while it is read', async () => {
    const store = await openTempStore();
    try {
      // Written through this store: every record is cached.
      await store.commit({
        keys: [],
        pods: ['a', 'b', 'c', 'd'].map((name, i) => ({ name, after: pod([pubkey(i)]) })),
      });
      const scan = store.pods()[Symbol.asyncIterator]();
      expect((await scan.next()).value).toEqual(['a', pod([pubkey(0)])]);
      // a's key moves forward to c, b goes, e comes: none of it shows in this listing, so no
      // key is listed under two pods (a and c) and nothing half-done shows.
      await store.commit({
        keys: [],
        pods: [
          { name: 'a', before: pod([pubkey(0)]), after: pod([], 2) },
          { name: 'b', before: pod([pubkey(1)]) },
          { name: 'c', before: pod([pubkey(2)]), after: pod([pubkey(2), pubkey(0)], 2) },
          { name: 'e', after: pod([pubkey(4)], 2) },
        ],
      });
      const rest: Array<[string, PodRecord]> = [];
      for (let next = await scan.next(); !next.done; next = await scan.next())
        rest.push(next.value);
      expect(rest).toEqual([
        ['b', pod([pubkey(1)])],
        ['c', pod([pubkey(2)])],
        ['d', pod([pubkey(3)])],
      ]);
      // The next listing shows the commit, from a cursor too.
      expect(await listing(store)).toEqual([
        ['a', pod([], 2)],
        ['c', pod([pubkey(2), pubkey(0)], 2)],
        ['d', pod([pubkey(3)])],
        ['e', pod([pubkey(4)], 2)],
      ]);
      const after = [];
      for await (const [name] of store.pods({ after: 'b' })) after.push(name);
      expect(after).toEqual(['c', 'd', 'e']);
      after.length = 0;
      for await (const [name] of store.pods({ after: 'c' })) after.push(name);
      expect(after).toEqual(['d', 'e']);
      // A pod added alone, and one removed alone, show in the next listing.
      await store.commit({ keys: [], pods: [{ name: 'bb', after: pod([pubkey(5)], 3) }] });
      expect((await listing(store)).map(([name]) => name)).toEqual(['a', 'bb', 'c', 'd', 'e']);
      await store.commit({ keys: [], pods: [{ name: 'd', before: pod([pubkey(3)]) }] });
      expect((await listing(store)).map(([name]) => name)).toEqual(['a', 'bb', 'c', 'e']);
      await store.commit({ keys: [], pods: [{ name: 'd', after: pod([], 4) }] });
      expect((await listing(store)).map(([name]) => name)).toEqual(['a', 'bb', 'c', 'd', 'e']);
    } finally {
      await store.close();
    }
  });

  it('lists a pod removed and made again once', async () => {
    const store = await openTempStore();
    try {
      await store.commit({
        keys: [],
        pods: ['a', 'b', 'c'].map((name) => ({ name, after: pod([]) })),
      });
      expect((await listing(store)).map(([name]) => name)).toEqual(['a', 'b', 'c']);
      await store.commit({ keys: [], pods: [{ name: 'b', before: pod([]) }] });
      await store.commit({ keys: [], pods: [{ name: 'b', after: pod([pubkey(1)], 2) }] });
      expect(await listing(store)).toEqual([
        ['a', pod([])],
        ['b', pod([pubkey(1)], 2)],
        ['c', pod([])],
      ]);
    } finally {
      await store.close();
    }
  });

  it("lists names in LevelDB's byte order, also where JavaScript's string order differs", async () => {
    // U+FFFF is EF BF BF in UTF-8 and U+1F600 F0 9F 98 80, but U+1F600 is D83D DE00 in UTF-16:
    // sorted as JavaScript strings they would swap. Such names are not Kubernetes names; a
    // store holding one lists from LevelDB.
    const store = await openTempStore();
    try {
      const names = ['a', '\uffff', '\u{1f600}'];
      await store.commit({ keys: [], pods: names.map((name) => ({ name, after: pod([]) })) });
      expect((await listing(store)).map(([name]) => name)).toEqual(names);
      expect((await listing(store)).map(([name]) => name)).toEqual(names);
    } finally {
      await store.close();
    }
  });

  it('reads every key record in batches', async () => {
    const store = await openTempStore();
    const records = Array.from({ length: 1200 }, (_, i) => ({
      pubkey: pubkey(i),
      secret: store.secrets.seal(new Uint8Array(32).fill(1), pubkey(i)),
      state: 'free' as const,
      since: i,
      createdAt: i,
      history: [{ at: i, event: 'created' as const }],
    }));
    await store.commit({ keys: records.map((after) => ({ after })), pods: [] });
    const read = [];
    for await (const r of store.keyRecords()) read.push(r.pubkey);
    expect(read).toEqual(records.map((r) => r.pubkey));
  });
});

describe('the record cache', () => {
  it('fills from a scan only while it has room, never evicting what requests use', () => {
    // 32 records: a write to a full cache drops the 2 oldest (bounded-map.ts), and a scan
    // leaves those 2 places to writes.
    const cache = new RecordCache<PodRecord>(32);
    cache.set('a', pod([]));
    for (let i = 0; i < 40; i++) cache.fillIfRoom(`scan-${i}`, pod([pubkey(i)]), 0);
    expect(cache.get('a')).toEqual(pod([]));
    expect(cache.get('scan-28')).toEqual(pod([pubkey(28)]));
    expect(cache.get('scan-29')).toBeUndefined();
    // Requests fill it up; from then on, writes and scans taking turns: no scan gets in, and
    // every record a request wrote stays (what a write drops is the oldest: the first scan's).
    const written: string[] = [];
    for (let round = 0; round < 50; round++) {
      written.push(`pod-${round}`);
      cache.set(`pod-${round}`, pod([pubkey(round)]));
      for (let i = 0; i < 20; i++) cache.fillIfRoom(`later-scan-${round}-${i}`, pod([]), 0);
    }
    expect(written.slice(-30).map((name) => cache.get(name) !== undefined)).toEqual(
      Array(30).fill(true),
    );
    for (let round = 0; round < 50; round++)
      for (let i = 0; i < 20; i++) expect(cache.get(`later-scan-${round}-${i}`)).toBeUndefined();
    // A read that raced a batch is not cached for what the batch wrote, room or not; what the
    // batch did not write is.
    const raced = new RecordCache<PodRecord>(2);
    raced.written(['a'], 2);
    raced.fillIfRoom('a', pod([]), 1);
    raced.fillIfRoom('b', pod([]), 1);
    expect([raced.get('a'), raced.get('b')]).toEqual([undefined, pod([])]);
    // A read that started after the batch ended is cached.
    raced.fill('a', pod([pubkey(1)]), 2);
    expect(raced.get('a')).toEqual(pod([pubkey(1)]));
    // A read older than every batch the cache remembers is not cached: one it forgot may
    // have written the record.
    const old = new RecordCache<PodRecord>(2);
    for (let end = 2; end <= 200; end += 2) old.written([`other-${end}`], end);
    old.fill('a', pod([]), 1);
    old.fill('b', pod([]), 198);
    expect([old.get('a'), old.get('b')]).toEqual([undefined, pod([])]);
    // What a scan asks before it yields a record it looked up earlier (Store.pods).
    expect(raced.writtenSince('a', 1)).toBe(true);
    expect(raced.writtenSince('b', 1)).toBe(false);
    expect(raced.writtenSince('a', 2)).toBe(false);
    expect(old.writtenSince('other-200', 198)).toBe(true);
    expect(old.writtenSince('b', 198)).toBe(false);
    expect(old.writtenSince('b', 1)).toBe(true);
  });
});
