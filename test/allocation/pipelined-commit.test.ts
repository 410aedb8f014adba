// The group committer's pipeline on a store with one writer (LevelDB): the next group runs while
// the previous group's batch is being written, on top of its staged changes. LevelDB only: a
// store several servers share never pipelines (its before-images are checked in the database,
// where a batch not yet written is not), and the Transaction refuses a base there.
// The writes are held or failed by a gate in front of the real store's commit: the store, its
// LevelDB and its sync are real; only when a batch gets to be written is chosen by the test.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import type { Transaction } from '../../src/allocation/transaction.js';
import { editPod, handedTo, podChange, released } from '../../src/allocation/transitions.js';
import { checkStore } from '../../src/store/check.js';
import { totalKeys } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { openTempStore, tempDir, testKek } from '../helpers.js';
import { deferred, type Gate, gated, turns } from '../support/gated-store.js';
import { seedKeys } from '../support/seed.js';

const NOW = 1_800_000_000_000;

/** `pod` takes the oldest key of a pool, as read in `tx`; returns it. */
async function takeOne(
  tx: Transaction,
  pod: string,
  pool: 'unallocated' | 'cooling' = 'unallocated',
): Promise<string> {
  const [oldest] = await tx.oldest(pool, 1);
  const before = oldest && (await tx.getKey(oldest.pubkey));
  if (!before) throw new Error('pool empty');
  const podBefore = await tx.getPod(pod);
  // A cooled key leaves its last holder's record too (reuse.ts).
  const holder = before.state === 'cooling' ? before.pod : undefined;
  const holderBefore = holder === undefined ? undefined : await tx.getPod(holder);
  const uncooled =
    holder === undefined
      ? []
      : [podChange(holder, holderBefore, editPod(holderBefore, { uncool: [before.pubkey] }, NOW))];
  tx.stage({
    keys: [{ before, after: handedTo(before, pod, NOW, 'allocated') }],
    pods: [
      ...uncooled,
      podChange(pod, podBefore, editPod(podBefore, { hold: [before.pubkey] }, NOW)),
    ],
  });
  return before.pubkey;
}

/** `pod` releases its keys: they cool, and join the cooling pool. */
async function giveBack(tx: Transaction, pod: string): Promise<string[]> {
  const podBefore = await tx.getPod(pod);
  if (!podBefore || podBefore.keys.length === 0) return [];
  const keys = await tx.getKeys(podBefore.keys);
  tx.stage({
    keys: keys.map((before) => ({
      before,
      after: released(before, pod, NOW + 1, 'confirmed', undefined),
    })),
    pods: [
      podChange(
        pod,
        podBefore,
        editPod(podBefore, { drop: podBefore.keys, cool: podBefore.keys }, NOW + 1),
      ),
    ],
  });
  return podBefore.keys;
}

/** Gates the first batch only: `entered` resolves when it gets there, `open` lets it on. */
function holdFirst() {
  const entered = deferred();
  const open = deferred();
  let first = true;
  const gate: Gate = async () => {
    if (!first) return;
    first = false;
    entered.resolve();
    await open.promise;
  };
  return { gate, entered: entered.promise, open };
}

/** Whether `p` has settled by the time the event loop has run a few more turns. */
async function settledSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await turns();
  return settled;
}

describe('GroupCommitter on a store with one writer: the pipeline', () => {
  it('runs the next group while a batch is written, on its changes, and answers after it', async () => {
    const real = await openTempStore();
    await seedKeys(real, 4);
    const held = holdFirst();
    const store = gated(real, held.gate);
    const group = GroupCommitter.of(store);
    const first = group.run((tx) => takeOne(tx, 'a'));
    await held.entered;
    // The first batch is held: the next group runs on top of it all the same.
    const ran = deferred<string>();
    const second = group.run(async (tx) => {
      const pk = await takeOne(tx, 'b');
      ran.resolve(pk);
      return pk;
    });
    const secondKey = await ran.promise;
    expect(await settledSoon(first)).toBe(false);
    // Its answer waits for its own batch, which waits for the first one.
    expect(await settledSoon(second)).toBe(false);
    expect(real.storedCounts()).toMatchObject({ free: 4, allocated: 0 });
    held.open.resolve();
    const firstKey = await first;
    expect(await second).toBe(secondKey);
    expect(firstKey).not.toBe(secondKey);
    expect(real.storedCounts()).toMatchObject({ free: 2, allocated: 2, pods: 2 });
    expect((await real.getPod('b'))?.keys).toEqual([secondKey]);
    expect((await checkStore(real)).problems).toEqual([]);
  });

  it('a group run on a batch that then fails is not written, and fails with it', async () => {
    const real = await openTempStore();
    await seedKeys(real, 4);
    const before = await real.rawEntries();
    const entered = deferred();
    const fail = deferred();
    let first = true;
    const store = gated(real, async () => {
      if (!first) return;
      first = false;
      entered.resolve();
      await fail.promise;
    });
    const group = GroupCommitter.of(store);
    const firstRun = group.run((tx) => takeOne(tx, 'a'));
    await entered.promise;
    const ran = deferred();
    const secondRun = group.run(async (tx) => {
      const pk = await takeOne(tx, 'b');
      ran.resolve();
      return pk;
    });
    await ran.promise;
    fail.reject(new Error('disk gone'));
    await expect(firstRun).rejects.toThrow('disk gone');
    await expect(secondRun).rejects.toThrow('disk gone');
    expect(await real.rawEntries()).toEqual(before);
    // The next group runs on what is stored, and gets the key the first one did not keep.
    const [oldest] = await real.oldest('unallocated', 1);
    expect(await group.run((tx) => takeOne(tx, 'c'))).toBe(oldest?.pubkey);
    expect(real.storedCounts()).toMatchObject({ free: 3, allocated: 1, pods: 1 });
    expect((await checkStore(real)).problems).toEqual([]);
  });

  it('counts, the next key index and the pools include the batch being written, once', async () => {
    const real = await openTempStore();
    await seedKeys(real, 3);
    const held = holdFirst();
    const store = gated(real, held.gate);
    const group = GroupCommitter.of(store);
    const first = group.run(async (tx) => {
      const pk = await takeOne(tx, 'a');
      tx.stage({ keys: [], pods: [], nextKeyIndex: 7 });
      return pk;
    });
    await held.entered;
    const seen: unknown[] = [];
    const applied = deferred();
    const second = group.run(async (tx) => {
      const look = async () => ({
        total: totalKeys(tx.counts()),
        allocated: tx.counts().allocated,
        next: tx.nextKeyIndex(),
        free: (await tx.oldest('unallocated', 5)).length,
      });
      seen.push(await look());
      // The first batch gets written while this group runs: nothing is counted twice.
      held.open.resolve();
      await applied.promise;
      seen.push(await look());
      return takeOne(tx, 'b');
    });
    await first;
    applied.resolve();
    await second;
    const expected = { total: 3, allocated: 1, next: 7, free: 2 };
    expect(seen).toEqual([expected, expected]);
    expect(real.nextKeyIndex()).toBe(7);
    expect((await checkStore(real)).problems).toEqual([]);
  });

  it('a key the batch being written releases is in the cooling pool of the next group', async () => {
    const real = await openTempStore();
    await seedKeys(real, 1);
    const held = holdFirst();
    const store = gated(real, held.gate);
    const group = GroupCommitter.of(store);
    held.open.resolve(); // the first batch (the take) goes through; the second one is held
    const only = await group.run((tx) => takeOne(tx, 'a'));
    const again = holdFirst();
    const slow = GroupCommitter.of(gated(real, again.gate));
    const back = slow.run((tx) => giveBack(tx, 'a'));
    await again.entered;
    const ran = deferred();
    const next = slow.run(async (tx) => {
      try {
        return await takeOne(tx, 'b', 'cooling');
      } finally {
        ran.resolve();
      }
    });
    await ran.promise;
    again.open.resolve();
    expect(await back).toEqual([only]);
    expect(await next).toBe(only);
    expect(real.storedCounts()).toMatchObject({ free: 0, cooling: 0, allocated: 1 });
    expect((await checkStore(real)).problems).toEqual([]);
  });

  it('a long stream of groups that change nothing leaves no chain of groups to read through', async () => {
    const store = await openTempStore();
    await seedKeys(store, 4);
    const group = GroupCommitter.of(store);
    // Requests refused before they stage anything ("bad input changes nothing"), queued so
    // fast that the queue never empties: 6,000 groups, each run on top of the one before.
    const refused = Array.from({ length: 64 * 6000 }, () =>
      group
        .run(async () => {
          throw new Error('refused');
        })
        .catch(() => undefined),
    );
    // Queued behind them: a request that reads the counters (as --max-total-keys does).
    const counted = group.run(async (tx) => tx.counts().free);
    await Promise.all(refused);
    expect(await counted).toBe(4);
  }, 60_000);

  it('with writes slowed or failed at random, no key is in two pods and every answer is on disk', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            op: fc.constantFrom('take', 'take', 'give'),
            pod: fc.integer({ min: 0, max: 5 }),
            delayMs: fc.integer({ min: 0, max: 4 }),
            fail: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
          }),
          { minLength: 5, maxLength: 40 },
        ),
        async (steps) => {
          const dir = await tempDir();
          const real = await Store.open(dir, { kek: testKek });
          await seedKeys(real, 30);
          // Each batch waits its step's delay, and fails (unwritten) where the step says so.
          let batch = 0;
          const store = gated(real, async () => {
            const step = steps[batch++ % steps.length];
            await new Promise((r) => setTimeout(r, step?.delayMs ?? 0));
            if (step?.fail) throw new Error('injected write failure');
          });
          const group = GroupCommitter.of(store);
          const answers = await Promise.allSettled(
            steps.map(async ({ op, pod, delayMs }) => {
              await new Promise((r) => setTimeout(r, delayMs));
              const name = `p${pod}`;
              return op === 'take'
                ? { name, took: await group.run((tx) => takeOne(tx, name)) }
                : { name, gave: await group.run((tx) => giveBack(tx, name)) };
            }),
          );
          await real.close();
          const reopened = await Store.open(dir, { kek: testKek });
          try {
            expect((await checkStore(reopened)).problems).toEqual([]);
            // No key in two pods, and the pools hold the rest.
            const held = new Map<string, string>();
            for await (const [name, pod] of reopened.pods())
              for (const pk of pod.keys) {
                expect(held.get(pk)).toBeUndefined();
                held.set(pk, name);
              }
            expect(totalKeys(reopened.storedCounts())).toBe(30);
            // A pod that never gave back holds on disk exactly the keys it was answered: every
            // answer is durable, and no failed request left anything behind.
            for (let pod = 0; pod <= 5; pod++) {
              const name = `p${pod}`;
              if (steps.some((s) => s.op === 'give' && s.pod === pod)) continue;
              const answered = answers.flatMap((a) =>
                a.status === 'fulfilled' && 'took' in a.value && a.value.name === name
                  ? [a.value.took]
                  : [],
              );
              const onDisk = [...held].filter(([, holder]) => holder === name).map(([pk]) => pk);
              expect(onDisk.sort()).toEqual(answered.sort());
            }
          } finally {
            await reopened.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});
