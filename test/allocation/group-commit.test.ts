// The group committer over a real temp store, on both backends: one per store, operations in arrival order, each
// seeing what those before it staged, and one that throws leaves nothing of its own; a group
// waits while new connections keep coming.
import { EventEmitter } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GroupCommitter, SETTLE_MS } from '../../src/allocation/group-commit.js';
import type { Transaction } from '../../src/allocation/transaction.js';
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

    /** A committer following a server that the test makes accept connections. */
    async function following(keys: number) {
      const store = await backend.open();
      await seedKeys(store, keys);
      const group = GroupCommitter.of(store);
      const server = new EventEmitter();
      group.followConnections(server);
      /** The transaction each request ran in (one per group), and when it began. */
      const ranIn = new Map<string, Transaction>();
      const began = new Map<string, number>();
      const take = (pod: string) =>
        group.run((tx) => {
          ranIn.set(pod, tx);
          began.set(pod, performance.now());
          return takeOne(tx, pod);
        });
      return { store, server, ranIn, began, take };
    }

    it('a group waits while new connections keep coming: their requests join it', async () => {
      const { store, server, ranIn, take } = await following(6);
      // As libuv accepts them under load: one connection per turn, its request read with it.
      server.emit('connection');
      const answers = [take('p0')];
      for (let i = 1; i < 6; i++) {
        await nextTurn();
        server.emit('connection');
        answers.push(take(`p${i}`));
      }
      expect(new Set(await Promise.all(answers)).size).toBe(6);
      expect(ranIn.size).toBe(6);
      expect(new Set(ranIn.values()).size).toBe(1);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('without new connections a group does not wait: a later request goes in the next', async () => {
      const { ranIn, take } = await following(2);
      const first = take('a');
      await nextTurn();
      await nextTurn();
      await Promise.all([first, take('b')]);
      expect(ranIn.get('a')).not.toBe(ranIn.get('b'));
    });

    it('connections that never stop hold a group for SETTLE_MS, not longer', async () => {
      const { server, began, take } = await following(1);
      let flooding = true;
      const flood = (async () => {
        while (flooding) {
          server.emit('connection');
          await nextTurn();
        }
      })();
      const start = performance.now();
      server.emit('connection');
      await take('p');
      const waited = (began.get('p') ?? Number.NaN) - start;
      flooding = false;
      await flood;
      expect(waited).toBeGreaterThanOrEqual(SETTLE_MS);
      // Bounded: without the bound it would wait as long as the flood, which ends only now.
      expect(waited).toBeLessThan(SETTLE_MS + 5_000);
    });
  });
});
