// A group's pool reads on a shared store (Transaction.oldest over PgStore with lanes; commits
// 788d47b, cc0df58), checked against the pool as it is: every answer holds only keys of the
// pool that fit the cutoff and that the group did not take, each once, and as many as asked
// while there are that many (the pool is never reported ended early: the allocator would make
// new keys, in send mode a 32 ETH deposit each). Requests take keys and keep them or roll
// back; the cooling cutoff moves on between requests, as the clock does. One server, real
// PostgreSQL, fast-check.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Transaction } from '../../src/allocation/transaction.js';
import type { PoolIndex } from '../../src/store/contract.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import type { KeyRecord } from '../../src/store/records.js';
import { onCleanup, testKek } from '../helpers.js';
import { freeKey } from '../store/conformance-support.js';
import { newDatabase } from '../support/pg-databases.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const bins = await findPostgres();

interface Step {
  readonly limit: number;
  /** How many of the answer the request takes (allocates). */
  readonly take: number;
  readonly rollback: boolean;
  /** How far the cooling cutoff moved on since the previous request. */
  readonly advance: number;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  limit: fc.integer({ min: 1, max: 24 }),
  take: fc.integer({ min: 0, max: 24 }),
  rollback: fc.boolean(),
  advance: fc.integer({ min: 0, max: 200 }),
});

const poolArb = fc.array(
  fc.record({ lane: fc.integer({ min: 0, max: 15 }), age: fc.integer({ min: 0, max: 1_000 }) }),
  { maxLength: 160 },
);

/** Resolves with `p`'s outcome, or 'timed out' after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const out = new Promise<'timed out'>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), ms);
  });
  return Promise.race([p, out]).finally(() => clearTimeout(timer));
}

describe.skipIf(bins === undefined)('a group’s pool reads against the pool', () => {
  const server = bins ? usePostgres(bins) : () => undefined;
  let made = 0;

  async function run(
    index: PoolIndex,
    pool: ReadonlyArray<{ lane: number; age: number }>,
    steps: readonly Step[],
  ): Promise<void> {
    const cluster = server();
    if (!cluster) throw new Error('PostgreSQL is not started');
    const url = await newDatabase(cluster, `pkm_tx_pool_${++made}`);
    const store = await PgStore.open(url, { kek: testKek, lanes: true });
    onCleanup(() => store.close());
    const base = 1_000_000;
    const records: KeyRecord[] = pool.map(({ lane, age }, i) => {
      const free = freeKey(store, i * 16 + lane + 16, base + age);
      return index === 'unallocated' ? free : { ...free, state: 'cooling', pod: 'gone' };
    });
    if (records.length > 0)
      await store.commit({
        keys: records.map((after) => ({ after })),
        pods:
          index === 'cooling'
            ? [
                {
                  name: 'gone',
                  after: { keys: [], cooling: records.map((r) => r.pubkey), since: 1 },
                },
              ]
            : [],
      });
    const tx = new Transaction(store);
    const taken = new Set<string>();
    let cutoff = base + 400;
    for (const step of steps) {
      cutoff += step.advance;
      const at = index === 'cooling' ? cutoff : undefined;
      tx.begin();
      const answer = await within(tx.oldest(index, step.limit, at), 5_000);
      if (answer === 'timed out')
        throw new Error(`oldest(${index}, ${step.limit}, ${at}) never ended`);
      const fits = records.filter(
        (r) => !taken.has(r.pubkey) && (at === undefined || r.since <= at),
      );
      const names = answer.map((e) => e.pubkey);
      expect(new Set(names).size, 'a key twice in one answer').toBe(names.length);
      for (const n of names)
        expect(
          fits.some((r) => r.pubkey === n),
          `${n} is not in the pool, or taken`,
        ).toBe(true);
      expect(names.length, 'the pool reported ended early').toBe(Math.min(step.limit, fits.length));
      const take = answer.slice(0, step.take).map((e) => e.pubkey);
      const before = await tx.getKeys(take);
      tx.stage({
        keys: before.map((r) => ({ before: r, after: { ...r, state: 'allocated', pod: 'p' } })),
        pods: [],
      });
      if (step.rollback) tx.rollback();
      else {
        tx.keep();
        for (const pk of take) taken.add(pk);
      }
    }
  }

  it('free keys: every answer is of the pool, once each, and as long as the pool allows', async () => {
    await fc.assert(
      fc.asyncProperty(poolArb, fc.array(stepArb, { minLength: 1, maxLength: 12 }), (pool, steps) =>
        run('unallocated', pool, steps),
      ),
      { numRuns: 12, endOnFailure: true },
    );
  }, 180_000);

  it('cooling keys under a moving cutoff: the same', async () => {
    await fc.assert(
      fc.asyncProperty(poolArb, fc.array(stepArb, { minLength: 1, maxLength: 12 }), (pool, steps) =>
        run('cooling', pool, steps),
      ),
      { numRuns: 12, endOnFailure: true },
    );
  }, 180_000);
});
