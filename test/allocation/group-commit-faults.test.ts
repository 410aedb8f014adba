// The group committer over a real LevelDB whose writes are held or failed by a gate in front of
// the store's commit (test/support/gated-store.ts): the store, its LevelDB and its sync are
// real; only when a batch gets to be written, or whether it fails, is chosen by the test.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { checkStore } from '../../src/store/check.js';
import { totalKeys } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { openTempStore, tempDir, testKek } from '../helpers.js';
import { deferred, gated } from '../support/gated-store.js';
import { seedKeys } from '../support/seed.js';
import { giveBack, takeOne } from '../support/tx-ops.js';

describe('GroupCommitter, its writes held or failed', () => {
  it('a batch that fails answers its group with the failure and writes nothing of it', async () => {
    const real = await openTempStore();
    await seedKeys(real, 4);
    const before = await real.rawEntries();
    const [oldest] = await real.oldest('unallocated', 1);
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
    // Queued while the batch is held: it runs once the batch has failed, on what is stored.
    const secondRun = group.run((tx) => takeOne(tx, 'b'));
    fail.reject(new Error('disk gone'));
    await expect(firstRun).rejects.toThrow('disk gone');
    expect(await real.rawEntries()).toEqual(before);
    // It got the key the failed one would have had: the oldest, still free.
    expect(await secondRun).toBe(oldest?.pubkey);
    expect(real.storedCounts()).toMatchObject({ free: 3, allocated: 1, pods: 1 });
    expect((await checkStore(real)).problems).toEqual([]);
  });

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
