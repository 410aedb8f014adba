// The group committer over a real temp store, on both backends: one per store, operations in arrival order, each
// seeing what those before it staged, and one that throws leaves nothing of its own.
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { checkStore } from '../../src/store/check.js';
import { eachBackend } from '../support/backends.js';
import { seedKeys } from '../support/seed.js';
import { takeOne } from '../support/tx-ops.js';

eachBackend((backend) => {
  describe('GroupCommitter', () => {
    it('is one per store: every caller shares the same writer', async () => {
      const a = await backend.open();
      const b = await backend.open();
      expect(GroupCommitter.of(a)).toBe(GroupCommitter.of(a));
      expect(GroupCommitter.of(a)).not.toBe(GroupCommitter.of(b));
    });

    it('runs concurrent operations one at a time: no two take the same key', async () => {
      const store = await backend.open();
      await seedKeys(store, 40);
      const taken = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          GroupCommitter.of(store).run((tx) => takeOne(tx, `p${i}`)),
        ),
      );
      expect(new Set(taken).size).toBe(40);
      expect(store.storedCounts()).toMatchObject({ free: 0, allocated: 40, pods: 40 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('an operation that throws after staging leaves nothing; the rest of its group commits', async () => {
      const store = await backend.open();
      await seedKeys(store, 2);
      const group = GroupCommitter.of(store);
      const first = group.run((tx) => takeOne(tx, 'a'));
      const failing = group.run(async (tx) => {
        await takeOne(tx, 'b');
        throw new Error('refused after staging');
      });
      const third = group.run((tx) => takeOne(tx, 'c'));
      await expect(failing).rejects.toThrow('refused after staging');
      const [x, y] = await Promise.all([first, third]);
      expect(x).not.toBe(y);
      expect(await store.getPod('b')).toBeUndefined();
      expect(store.storedCounts()).toMatchObject({ free: 0, allocated: 2, pods: 2 });
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });
});
