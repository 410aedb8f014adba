// The store conformance suite (issue 15): the rules of the store contract, registered as vitest
// tests for any backend, in the manner of abstract-level's compliance suite. A backend's test
// file calls storeConformance with a way to open a new, empty store; nothing here knows how a
// backend keeps its data.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import type { KeyRecord } from '../../src/store/records.js';
import { apply, step } from './conformance-sequences.js';
import {
  collect,
  coolingKey,
  freeKey,
  pod,
  pubkeyOf,
  snapshot,
  TEST_META,
  type TestStore,
} from './conformance-support.js';

export function storeConformance(name: string, open: () => Promise<TestStore>): void {
  describe(`store contract: ${name}`, () => {
    it('a new store is empty', async () => {
      const store = await open();
      const s = await snapshot(store);
      expect(s).toMatchObject({ keys: [], pods: [], unallocated: [], cooling: [], events: [] });
      expect(Object.values(s.counts).every((n) => n === 0)).toBe(true);
      expect(s.nextKeyIndex).toBe(0);
      expect(s.meta).toEqual([undefined, undefined]);
      expect(store.isOpen).toBe(true);
    });

    it('reads see a commit at once: records, pods, indexes and counters', async () => {
      const store = await open();
      const a = freeKey(store, 1, 100);
      const b: KeyRecord = { ...freeKey(store, 2, 200), state: 'allocated', pod: 'p' };
      await store.commit({
        keys: [{ after: a }, { after: b }],
        pods: [{ name: 'p', after: pod([b.pubkey]) }],
      });
      expect(await store.getKey(a.pubkey)).toEqual(a);
      expect(await store.getKeys([b.pubkey, a.pubkey])).toEqual([b, a]);
      expect(await store.getKey(pubkeyOf(3))).toBeUndefined();
      expect(await store.getPod('p')).toEqual(pod([b.pubkey]));
      expect(await store.getPod('q')).toBeUndefined();
      expect(await store.oldest('unallocated', 5)).toEqual([{ since: 100, pubkey: a.pubkey }]);
      expect(store.storedCounts()).toMatchObject({ free: 1, allocated: 1, pods: 1 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('getKeys refuses a pubkey without a record (STORE_CORRUPT)', async () => {
      const store = await open();
      await expect(store.getKeys([pubkeyOf(9)])).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    });

    it('lists key records in pubkey order, and pods in name order after a name', async () => {
      const store = await open();
      const keys = [3, 1, 2].map((n) => ({
        ...freeKey(store, n, 5),
        state: 'allocated' as const,
        pod: `p${n}`,
      }));
      await store.commit({
        keys: keys.map((after) => ({ after })),
        pods: keys.map((k) => ({ name: k.pod, after: pod([k.pubkey]) })),
      });
      expect((await collect(store.keyRecords())).map((r) => r.pubkey)).toEqual(
        [1, 2, 3].map(pubkeyOf),
      );
      expect((await collect(store.pods())).map(([n]) => n)).toEqual(['p1', 'p2', 'p3']);
      expect((await collect(store.pods({ after: 'p1' }))).map(([n]) => n)).toEqual(['p2', 'p3']);
    });

    it('writes nothing when one record of a change is invalid (all or nothing)', async () => {
      const store = await open();
      await store.commit({ keys: [{ after: freeKey(store, 1, 1) }], pods: [] });
      const before = await snapshot(store);
      const broken = { ...freeKey(store, 3, 3), state: 'allocated' as const }; // allocated needs a pod
      await expect(
        store.commit({
          keys: [{ after: freeKey(store, 2, 2) }, { after: broken }],
          pods: [{ name: 'p', after: pod([]) }],
          nextKeyIndex: 5,
          events: [{ at: 3, type: 'import', pubkeys: [] }],
          meta: [[TEST_META[0], 'x']],
        }),
      ).rejects.toThrow(/invalid key record/);
      expect(await snapshot(store)).toEqual(before);
    });

    it('writes nothing for a change with an audit event of a field the schema does not know', async () => {
      const store = await open();
      const before = await snapshot(store);
      // Not a literal in place: TypeScript lets a value with more fields through, as code could.
      const odd = { at: 3, type: 'import' as const, pubkeys: [], note: 'not in the schema' };
      await expect(
        store.commit({ keys: [{ after: freeKey(store, 1, 1) }], pods: [], events: [odd] }),
      ).rejects.toMatchObject({
        code: 'INTERNAL',
        message: expect.stringMatching(/invalid audit event/),
      });
      expect(await snapshot(store)).toEqual(before);
    });

    it('writes nothing for a change that renames a key or lowers the next key index', async () => {
      const store = await open();
      const a = freeKey(store, 1, 1);
      await store.commit({ keys: [{ after: a }], pods: [], nextKeyIndex: 4 });
      const before = await snapshot(store);
      await expect(
        store.commit({ keys: [{ before: a, after: freeKey(store, 2, 1) }], pods: [] }),
      ).rejects.toThrow(/keep its pubkey/);
      await expect(
        store.commit({ keys: [{ after: freeKey(store, 3, 1) }], pods: [], nextKeyIndex: 3 }),
      ).rejects.toThrow(/may only grow/);
      expect(await snapshot(store)).toEqual(before);
    });

    it('nextKeyIndex only grows, and stays where no change names it', async () => {
      const store = await open();
      await store.commit({ keys: [], pods: [], nextKeyIndex: 2 });
      await store.commit({ keys: [], pods: [], nextKeyIndex: 2 });
      await store.commit({ keys: [{ after: freeKey(store, 1, 1) }], pods: [] });
      expect(store.nextKeyIndex()).toBe(2);
      await store.commit({ keys: [], pods: [], nextKeyIndex: 7 });
      expect(store.nextKeyIndex()).toBe(7);
    });

    it('oldest: by time then pubkey, at most limit, with atOrBefore inclusive', async () => {
      const store = await open();
      const keys = [
        freeKey(store, 4, 300),
        freeKey(store, 2, 100),
        freeKey(store, 3, 200),
        freeKey(store, 1, 200),
      ];
      await store.commit({ keys: keys.map((after) => ({ after })), pods: [] });
      const all = [
        { since: 100, pubkey: pubkeyOf(2) },
        { since: 200, pubkey: pubkeyOf(1) },
        { since: 200, pubkey: pubkeyOf(3) },
        { since: 300, pubkey: pubkeyOf(4) },
      ];
      expect(await store.oldest('unallocated', 10)).toEqual(all);
      expect(await store.oldest('unallocated', 2)).toEqual(all.slice(0, 2));
      expect(await store.oldest('unallocated', 0)).toEqual([]);
      expect(await store.oldest('unallocated', 10, 200)).toEqual(all.slice(0, 3));
      expect(await store.oldest('unallocated', 10, 199)).toEqual(all.slice(0, 1));
      expect(await store.oldest('unallocated', 10, 99)).toEqual([]);
      expect(await store.oldest('cooling', 10)).toEqual([]);
      expect(await store.indexEntries('unallocated')).toEqual(all);
      // Keys passed over are neither answered nor counted: the read goes on past them.
      const staged = new Set([pubkeyOf(2), pubkeyOf(3)]);
      expect(await store.oldest('unallocated', 2, undefined, staged)).toEqual([all[1], all[3]]);
      expect(await store.oldest('unallocated', 10, 200, staged)).toEqual([all[1]]);
    });

    it('still finds a free key inserted older than every key read before', async () => {
      const store = await open();
      await store.commit({
        keys: [{ after: freeKey(store, 1, 5000) }, { after: freeKey(store, 2, 6000) }],
        pods: [],
      });
      expect((await store.oldest('unallocated', 1)).map((e) => e.since)).toEqual([5000]);
      await store.commit({ keys: [{ after: freeKey(store, 3, 1000) }], pods: [] });
      expect((await store.oldest('unallocated', 3)).map((e) => e.since)).toEqual([
        1000, 5000, 6000,
      ]);
    });

    it('still finds a cooling key released before a cutoff that found none', async () => {
      const store = await open();
      const one = coolingKey(store, 1, 9000, 'p');
      await store.commit({
        keys: [{ after: one }],
        pods: [{ name: 'p', after: pod([], [one.pubkey]) }],
      });
      expect(await store.oldest('cooling', 5, 8000)).toEqual([]);
      const two = coolingKey(store, 2, 100, 'p');
      await store.commit({
        keys: [{ after: two }],
        pods: [
          { name: 'p', before: pod([], [one.pubkey]), after: pod([], [one.pubkey, two.pubkey]) },
        ],
      });
      expect((await store.oldest('cooling', 5, 8000)).map((e) => e.since)).toEqual([100]);
      expect((await store.oldest('cooling', 1))[0]?.since).toBe(100);
    });

    it('a key leaves its index when its state changes, and moves in it when its time does', async () => {
      const store = await open();
      const a = freeKey(store, 1, 10);
      await store.commit({ keys: [{ after: a }], pods: [] });
      const later = { ...a, since: 50 };
      await store.commit({ keys: [{ before: a, after: later }], pods: [] });
      expect(await store.indexEntries('unallocated')).toEqual([{ since: 50, pubkey: a.pubkey }]);
      const held: KeyRecord = { ...later, state: 'allocated', pod: 'p', since: 60 };
      await store.commit({
        keys: [{ before: later, after: held }],
        pods: [{ name: 'p', after: pod([a.pubkey]) }],
      });
      expect(await store.indexEntries('unallocated')).toEqual([]);
      expect(await store.indexEntries('cooling')).toEqual([]);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('countCoolingAfter counts the keys released strictly after the cutoff', async () => {
      const store = await open();
      const keys = [
        coolingKey(store, 1, 100, 'p'),
        coolingKey(store, 2, 200, 'p'),
        coolingKey(store, 3, 300, 'p'),
      ];
      await store.commit({
        keys: keys.map((after) => ({ after })),
        pods: [
          {
            name: 'p',
            after: pod(
              [],
              keys.map((k) => k.pubkey),
            ),
          },
        ],
      });
      expect(await store.countCoolingAfter(99)).toBe(3);
      expect(await store.countCoolingAfter(200)).toBe(1);
      expect(await store.countCoolingAfter(300)).toBe(0);
    });

    it('counters follow every change: states, fences, and pods that hold keys', async () => {
      const store = await open();
      const a = freeKey(store, 1, 1);
      const b = freeKey(store, 2, 1);
      await store.commit({ keys: [{ after: a }, { after: b }], pods: [] });
      const held: KeyRecord = { ...a, state: 'allocated', pod: 'p' };
      await store.commit({
        keys: [{ before: a, after: held }],
        pods: [{ name: 'p', after: pod([a.pubkey]) }],
      });
      expect(store.storedCounts()).toMatchObject({ free: 1, allocated: 1, pods: 1 });
      const fenced: KeyRecord = { ...held, state: 'cooling', stop: 'fenced', since: 2 };
      await store.commit({
        keys: [{ before: held, after: fenced }],
        pods: [{ name: 'p', before: pod([a.pubkey]), after: pod([], [a.pubkey]) }],
      });
      expect(store.storedCounts()).toMatchObject({
        free: 1,
        allocated: 0,
        cooling: 1,
        fenced: 1,
        pods: 0,
      });
      await store.commit({ keys: [{ before: b, after: { ...b, state: 'retired' } }], pods: [] });
      expect(store.storedCounts()).toMatchObject({ free: 0, retired: 1, cooling: 1, fenced: 1 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('a deleted pod record is gone from getPod and pods()', async () => {
      const store = await open();
      await store.commit({
        keys: [],
        pods: [
          { name: 'p', after: pod([]) },
          { name: 'q', after: pod([]) },
        ],
      });
      await store.commit({ keys: [], pods: [{ name: 'p', before: pod([]) }] });
      expect(await store.getPod('p')).toBeUndefined();
      expect((await collect(store.pods())).map(([n]) => n)).toEqual(['q']);
    });

    it('sets and removes meta values with a change', async () => {
      const store = await open();
      const [x, y] = TEST_META;
      await store.commit({
        keys: [],
        pods: [],
        meta: [
          [x, '1'],
          [y, '2'],
        ],
      });
      expect([await store.getMeta(x), await store.getMeta(y)]).toEqual(['1', '2']);
      await store.commit({
        keys: [],
        pods: [],
        meta: [
          [x, undefined],
          [y, '3'],
        ],
      });
      expect([await store.getMeta(x), await store.getMeta(y)]).toEqual([undefined, '3']);
    });

    it('binds its key source once, and then refuses another one or none', async () => {
      const store = await open();
      await store.bindKeySource(undefined);
      await store.bindKeySource('fp-1');
      await store.bindKeySource('fp-1');
      await expect(store.bindKeySource('fp-2')).rejects.toMatchObject({
        code: 'MNEMONIC_MISMATCH',
      });
      await expect(store.bindKeySource(undefined)).rejects.toMatchObject({
        code: 'MNEMONIC_MISMATCH',
      });
    });

    it('numbers audit events in commit order, and pages them with events(since, limit)', async () => {
      const store = await open();
      for (const at of [1, 2, 3])
        await store.commit({
          keys: [],
          pods: [],
          events: [
            { at, type: 'allocate', pubkeys: [] },
            { at, type: at === 2 ? 'fence' : 'release', pubkeys: [] },
          ],
        });
      const all = await store.events(0, 100);
      expect(all.map((e) => [e.seq, e.at])).toEqual([
        [0, 1],
        [1, 1],
        [2, 2],
        [3, 2],
        [4, 3],
        [5, 3],
      ]);
      expect((await store.events(2, 3)).map((e) => e.seq)).toEqual([2, 3, 4]);
      expect((await store.events(5, 10)).map((e) => e.seq)).toEqual([5]);
      expect(await store.events(6, 10)).toEqual([]);
      expect((await store.events(-3, 1)).map((e) => e.seq)).toEqual([0]);
      const last = await store.lastEvents(new Set(['release', 'fence']), 2);
      expect(last.map((e) => e.seq)).toEqual([5, 3]);
    });

    it('refuses a store of a newer schema version, with a clear message', async () => {
      const store = await open();
      await expect(store.reopenAtSchema(SCHEMA_VERSION + 1)).rejects.toMatchObject({
        code: 'SCHEMA_TOO_NEW',
        message: expect.stringMatching(/newer than this pkm understands/),
      });
    });

    it('is closed after close()', async () => {
      const store = await open();
      await store.close();
      expect(store.isOpen).toBe(false);
    });

    it('keeps everything across close and reopen, and numbers events on', async (ctx) => {
      const store = await open();
      if (!store.reopen) return ctx.skip('this backend keeps nothing past close');
      const held: KeyRecord = { ...freeKey(store, 1, 3000), state: 'allocated', pod: 'p' };
      const keys = [held, freeKey(store, 2, 1000), freeKey(store, 3, 2000)];
      await store.commit({
        keys: keys.map((after) => ({ after })),
        pods: [{ name: 'p', after: pod([held.pubkey]) }],
        nextKeyIndex: 9,
        events: [{ at: 1, type: 'import', pubkeys: [] }],
        meta: [[TEST_META[0], 'kept']],
      });
      await store.bindKeySource('fp');
      const before = await snapshot(store);
      const again = await store.reopen();
      expect(await snapshot(again)).toEqual(before);
      await expect(again.bindKeySource('other')).rejects.toMatchObject({
        code: 'MNEMONIC_MISMATCH',
      });
      await again.commit({ keys: [], pods: [], events: [{ at: 2, type: 'import', pubkeys: [] }] });
      expect((await again.events(0, 10)).map((e) => e.seq)).toEqual([0, 1]);
      expect((await checkStore(again)).problems).toEqual([]);
    });

    it('checks clean after random sequences of valid changes (and refused invalid ones)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
          const store = await open();
          const made = { n: 0 };
          for (const s of steps) await apply(store, s, made);
          const report = await checkStore(store);
          expect(report.problems).toEqual([]);
          expect(report.keys).toBe(made.n);
          await store.close();
        }),
        { numRuns: 25 },
      );
    }, 60_000);
  });
}
