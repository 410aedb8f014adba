// A group's pool reads through the LevelDB store's index window, with the window's memo of the
// staged keys it passed over (index-window.ts): over random groups of operations that take
// keys, free taken ones again, read, and are kept or rolled back, and groups that commit, every
// read is the one a model gives (the committed index, less what is staged, plus what is staged
// free). A read that missed a key would hand it to nobody; one that gave a staged key would
// hand it to two pods.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { Transaction } from '../../src/allocation/transaction.js';
import type { IndexEntry } from '../../src/store/contract.js';
import type { KeyRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { tempDir, testKek } from '../helpers.js';
import { seedKeys } from '../support/seed.js';

const KEYS = 30;

type Step =
  | { readonly op: 'takeOldest'; readonly n: number }
  | { readonly op: 'take'; readonly key: number }
  | { readonly op: 'free'; readonly key: number; readonly since: number }
  | { readonly op: 'read'; readonly limit: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('takeOldest' as const), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant('take' as const), key: fc.nat({ max: KEYS - 1 }) }),
  // Freed at an older time than the seeded keys': it goes to the index's front.
  fc.record({
    op: fc.constant('free' as const),
    key: fc.nat({ max: KEYS - 1 }),
    since: fc.nat({ max: 5 }),
  }),
  fc.record({ op: fc.constant('read' as const), limit: fc.integer({ min: 1, max: 40 }) }),
);
/** An operation of a group: its steps, whether it is kept, and whether the group then commits. */
const operation = fc.record({
  steps: fc.array(step, { minLength: 1, maxLength: 5 }),
  keep: fc.boolean(),
  commit: fc.boolean(),
});

function older(a: IndexEntry, b: IndexEntry): number {
  return a.since - b.since || (a.pubkey < b.pubkey ? -1 : a.pubkey > b.pubkey ? 1 : 0);
}

it('a group reads the pool exactly, through takes, frees, rollbacks and commits', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(operation, { maxLength: 25 }), async (operations) => {
      const store = await Store.open(await tempDir(), { kek: testKek });
      try {
        const keys = [...(await seedKeys(store, KEYS)).keys()].sort();
        const keyAt = (i: number) => keys[i] ?? '';
        let tx = new Transaction(store);
        /** The model: what the group staged, by pubkey. */
        let staged = new Map<string, KeyRecord>();
        const expected = async (limit: number) => {
          const committed = (await store.oldest('unallocated', 1000)).filter(
            (e) => !staged.has(e.pubkey),
          );
          const freed = [...staged.values()]
            .filter((r) => r.state === 'free')
            .map((r) => ({ since: r.since, pubkey: r.pubkey }));
          return [...committed, ...freed].sort(older).slice(0, limit);
        };
        const restage = async (pubkey: string, change: (r: KeyRecord) => KeyRecord | undefined) => {
          const before = await tx.getKey(pubkey);
          const after = before && change(before);
          if (!before || !after) return;
          tx.stage({ keys: [{ before, after }], pods: [] });
          staged.set(pubkey, after);
        };
        for (const { steps, keep, commit } of operations) {
          tx.begin();
          const undo = new Map(staged);
          for (const s of steps) {
            if (s.op === 'read') {
              expect(await tx.oldest('unallocated', s.limit)).toEqual(await expected(s.limit));
              continue;
            }
            const taking =
              s.op === 'take'
                ? [keyAt(s.key)]
                : s.op === 'takeOldest'
                  ? (await tx.oldest('unallocated', s.n)).map((e) => e.pubkey)
                  : [];
            for (const pubkey of taking)
              await restage(pubkey, (r) =>
                r.state === 'free' ? { ...r, state: 'allocated', pod: 'p', since: 10 } : undefined,
              );
            if (s.op === 'free')
              await restage(keyAt(s.key), ({ pod: _pod, ...r }) =>
                r.state === 'allocated' ? { ...r, state: 'free', since: s.since } : undefined,
              );
          }
          if (keep) tx.keep();
          else {
            tx.rollback();
            staged = undo;
          }
          expect(await tx.oldest('unallocated', 40)).toEqual(await expected(40));
          if (commit) {
            if (!tx.isEmpty) await store.commit(tx.change());
            tx = new Transaction(store);
            staged = new Map();
          }
        }
      } finally {
        await store.close();
      }
    }),
    { numRuns: 150 },
  );
}, 300_000);
