// The transaction on its own, over a real temp store (on both backends): reads see what earlier operations of the
// group staged, an operation that is rolled back leaves nothing, and what commits is exactly
// what was staged.
import { describe, expect, it } from 'vitest';
import { Transaction } from '../../src/allocation/transaction.js';
import { editPod, handedTo, podChange } from '../../src/allocation/transitions.js';
import { checkStore } from '../../src/store/check.js';
import type { StoreContract } from '../../src/store/contract.js';
import { type Backend, eachBackend } from '../support/backends.js';
import { seedKeys } from '../support/seed.js';

const NOW = 1_800_000_000_000;

/** `pod` takes `pubkey` in `tx`: the key and the pod record, as one staged change. */
async function hand(tx: Transaction, pod: string, pubkey: string): Promise<void> {
  const before = await tx.getKey(pubkey);
  if (!before) throw new Error('setup');
  const podBefore = await tx.getPod(pod);
  tx.stage({
    keys: [{ before, after: handedTo(before, pod, NOW, 'allocated') }],
    pods: [podChange(pod, podBefore, editPod(podBefore, { hold: [pubkey] }, NOW))],
  });
}

async function seeded(
  backend: Backend,
  n: number,
): Promise<{ store: StoreContract; keys: string[] }> {
  const store = await backend.open();
  const keys = [...(await seedKeys(store, n)).keys()].sort();
  return { store, keys };
}

eachBackend((backend) => {
  describe('Transaction', () => {
    it('reads what earlier operations staged, while the store still holds the committed state', async () => {
      const { store, keys } = await seeded(backend, 3);
      const [a, b] = keys as [string, string];
      const tx = new Transaction(store);
      await hand(tx, 'p', a);
      expect(await tx.getKey(a)).toMatchObject({ state: 'allocated', pod: 'p' });
      expect(await store.getKey(a)).toMatchObject({ state: 'free' });
      expect((await tx.getPod('p'))?.keys).toEqual([a]);
      expect(await store.getPod('p')).toBeUndefined();
      expect((await tx.getKeys([a, b])).map((r) => r.state)).toEqual(['allocated', 'free']);
      const free = (await tx.oldest('unallocated', 10)).map((e) => e.pubkey);
      expect(free).not.toContain(a);
      expect(free).toHaveLength(2);
      expect(tx.counts()).toMatchObject({ free: 2, allocated: 1, pods: 1 });
      expect(store.storedCounts()).toMatchObject({ free: 3, allocated: 0, pods: 0 });
    });

    it('answers pool reads as a read of the store would, past what its group staged, read after read', async () => {
      // 150 keys, more than one read of a pool takes on a shared store (Transaction's chunks).
      const { store, keys } = await seeded(backend, 150);
      const released = await store.getKeys(keys.slice(0, 40));
      await store.commit({
        keys: released.map((before, i) => ({
          before,
          after: { ...before, state: 'cooling' as const, pod: 'old', since: 10 * (i + 1) },
        })),
        pods: [],
      });
      const tx = new Transaction(store);
      const taken = new Set<string>();
      const stillThere = (entries: Array<{ pubkey: string }>) =>
        entries.filter((e) => !taken.has(e.pubkey));
      for (let round = 0; round < 25; round++) {
        // The reuse delay's cutoff moves on as the group runs: one more cooled key a round.
        const cutoff = 10 * (round + 1) + 5;
        const free = await tx.oldest('unallocated', 4);
        const cooled = await tx.oldest('cooling', 2, cutoff);
        expect(free).toEqual(stillThere(await store.oldest('unallocated', 200)).slice(0, 4));
        expect(cooled).toEqual(stillThere(await store.oldest('cooling', 200, cutoff)).slice(0, 2));
        for (const e of [...free, ...cooled]) {
          await hand(tx, `p${round}`, e.pubkey);
          taken.add(e.pubkey);
        }
      }
      // 100 free keys, and the 25 whose reuse delay the cutoff passed.
      expect(taken.size).toBe(100 + 25);
      await store.commit(tx.change());
      const states = (await store.getKeys([...taken])).map((r) => r.state);
      expect(new Set(states)).toEqual(new Set(['allocated']));
    });

    // Only a store several servers share can be overtaken: declared for PostgreSQL alone, so
    // LevelDB's run reports no skipped test (issue 17, point 3).
    if (backend.name === 'PostgreSQL')
      it('a read its group keeps, overtaken by another server, fails the group’s commit whole', async () => {
        const place = await backend.place();
        const a = await place.open();
        const b = await place.open();
        await seedKeys(a, 8);
        const txA = new Transaction(a);
        const [first] = await txA.oldest('unallocated', 1);
        const txB = new Transaction(b);
        expect(await txB.oldest('unallocated', 1)).toEqual([first]);
        await hand(txB, 'b-pod', first?.pubkey ?? '');
        await b.commit(txB.change());
        // One view per group: the key still reads as free in A's group, and its commit fails.
        expect(await txA.oldest('unallocated', 1)).toEqual([first]);
        await hand(txA, 'a-pod', first?.pubkey ?? '');
        await expect(a.commit(txA.change())).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
        expect((await a.getKey(first?.pubkey ?? ''))?.pod).toBe('b-pod');
        expect(await a.getPod('a-pod')).toBeUndefined();
        // The group runs again in a new transaction, on fresh reads: another key.
        const [next] = await new Transaction(a).oldest('unallocated', 1);
        expect(next?.pubkey).not.toBe(first?.pubkey);
      });

    it('takes back a rolled-back operation whole, and keeps the ones kept before it', async () => {
      const { store, keys } = await seeded(backend, 2);
      const [a, b] = keys as [string, string];
      const tx = new Transaction(store);
      tx.begin();
      await hand(tx, 'p', a);
      tx.keep();
      tx.begin();
      await hand(tx, 'q', b);
      tx.stage({ keys: [], pods: [], nextKeyIndex: 7, meta: [['x', 'y']] });
      // A pool read passes over both (the store may remember that it did)...
      expect(await tx.oldest('unallocated', 2)).toEqual([]);
      tx.rollback();
      // ...and after the rollback the key is in the pool again.
      expect((await tx.oldest('unallocated', 2)).map((e) => e.pubkey)).toEqual([b]);
      expect(await tx.getKey(b)).toMatchObject({ state: 'free' });
      expect(await tx.getPod('q')).toBeUndefined();
      expect(tx.nextKeyIndex()).toBe(store.nextKeyIndex());
      expect(await tx.getMeta('x')).toBeUndefined();
      expect(tx.change().keys.map((c) => c.after.pubkey)).toEqual([a]);
      const single = new Transaction(store);
      single.begin();
      await hand(single, 'q', b);
      single.rollback();
      expect(single.isEmpty).toBe(true);
    });

    it('keeps the committed `before` of a key changed twice, and commits exactly what it staged', async () => {
      const { store, keys } = await seeded(backend, 2);
      const [a] = keys as [string];
      const tx = new Transaction(store);
      await hand(tx, 'p', a);
      const first = await tx.getKey(a);
      if (!first) throw new Error('setup');
      tx.stage({ keys: [{ before: first, after: { ...first, since: NOW + 1 } }], pods: [] });
      const [change] = tx.change().keys;
      expect(change?.before).toMatchObject({ state: 'free' });
      const counts = tx.counts(); // what the store's counters will be once this commits
      await store.commit(tx.change());
      expect(await store.getKey(a)).toMatchObject({ state: 'allocated', pod: 'p', since: NOW + 1 });
      expect(store.storedCounts()).toEqual(counts);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('lets the next derivation index only grow', async () => {
      const { store } = await seeded(backend, 0);
      const tx = new Transaction(store);
      tx.stage({ keys: [], pods: [], nextKeyIndex: 5 });
      expect(tx.nextKeyIndex()).toBe(5);
      expect(() => tx.stage({ keys: [], pods: [], nextKeyIndex: 4 })).toThrow(
        expect.objectContaining({ code: 'INTERNAL' }),
      );
    });
  });
});
