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
      tx.rollback();
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
