import { describe, expect, it } from 'vitest';
import { Allocator, type AllocatorConfig } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import { randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import { FakeClock, MINUTE } from '../helpers.js';
import { eachBackend } from '../support/backends.js';

const pubkeys = (a: { keys: Array<{ pubkey: string }> }) => a.keys.map((k) => k.pubkey);

eachBackend((backend) => {
  async function setup(config: Partial<AllocatorConfig> = {}) {
    const place = await backend.place();
    const store = await place.open();
    const clock = new FakeClock();
    const allocator = new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: clock.now,
      monotonic: clock.monotonic,
      keySource: randomKeySource,
      config: { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 64, maxTotalKeys: undefined, ...config },
    });
    return { store, clock, allocator, raw: () => place.raw() };
  }

  describe('allocate', () => {
    it('makes new BLS keys whose secret gives the pubkey it returns', async () => {
      const { allocator, store } = await setup();
      const a = await allocator.allocate('validator-0', 3);
      expect(a.keys).toHaveLength(3);
      for (const k of a.keys) {
        expect(k.pubkey).toMatch(/^0x[0-9a-f]{96}$/);
        expect(publicKeyOf(k.secretKey)).toBe(k.pubkey);
      }
      expect(new Set(pubkeys(a)).size).toBe(3);
      expect(store.storedCounts()).toMatchObject({ allocated: 3, pods: 1 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('is idempotent: the same pod gets the same keys', async () => {
      const { allocator, raw } = await setup();
      const first = await allocator.allocate('validator-0', 2);
      const before = await raw();
      const again = await allocator.allocate('validator-0', 2);
      expect(again).toEqual(first);
      expect(await raw()).toEqual(before);
    });

    it('tops up when a pod asks for more than it holds, keeping the keys it had first', async () => {
      const { allocator } = await setup();
      const two = await allocator.allocate('validator-0', 2);
      const five = await allocator.allocate('validator-0', 5);
      expect(pubkeys(five).slice(0, 2)).toEqual(pubkeys(two));
      expect(new Set(pubkeys(five)).size).toBe(5);
    });

    it('refuses fewer keys than a pod holds with COUNT_MISMATCH, changing nothing', async () => {
      const { allocator, raw } = await setup();
      await allocator.allocate('validator-0', 3);
      const before = await raw();
      await expect(allocator.allocate('validator-0', 2)).rejects.toMatchObject({
        code: 'COUNT_MISMATCH',
      });
      expect(await raw()).toEqual(before);
    });

    it('refuses a count outside 1..max-keys-per-pod', async () => {
      const { allocator, store } = await setup({ maxKeysPerPod: 4 });
      for (const count of [0, -1, 5, 1.5, Number.NaN]) {
        await expect(allocator.allocate('validator-0', count)).rejects.toMatchObject({
          code: 'COUNT_OUT_OF_RANGE',
        });
      }
      expect(store.storedCounts().allocated).toBe(0);
    });

    it('stops at --max-total-keys with POOL_EXHAUSTED, all or nothing', async () => {
      const { allocator, raw } = await setup({ maxTotalKeys: 5 });
      await allocator.allocate('a', 3);
      const before = await raw();
      await expect(allocator.allocate('b', 3)).rejects.toMatchObject({ code: 'POOL_EXHAUSTED' });
      expect(await raw()).toEqual(before);
      expect(pubkeys(await allocator.allocate('b', 2))).toHaveLength(2);
    });

    it('tells how long to wait when only cooling keys could serve', async () => {
      const { allocator, clock } = await setup({ maxTotalKeys: 2 });
      await allocator.allocate('a', 2);
      await allocator.release('a');
      clock.advance(5 * MINUTE);
      await expect(allocator.allocate('b', 1)).rejects.toMatchObject({
        code: 'POOL_EXHAUSTED',
        retryAfter: 15 * 60,
      });
    });
  });

  describe('release and cooling', () => {
    it('sends released keys to cooling; another pod gets them only after the reuse delay', async () => {
      const { allocator, clock, store } = await setup();
      const a = await allocator.allocate('validator-0', 2);
      expect(await allocator.release('validator-0')).toEqual(pubkeys(a));
      expect(await allocator.podKeys('validator-0')).toEqual([]);
      expect(store.storedCounts()).toMatchObject({ cooling: 2, allocated: 0, pods: 0 });

      clock.advance(20 * MINUTE - 1);
      const early = await allocator.allocate('validator-1', 2);
      expect(pubkeys(early).some((pk) => pubkeys(a).includes(pk))).toBe(false);

      clock.advance(1);
      const late = await allocator.allocate('validator-2', 2);
      expect(pubkeys(late).sort()).toEqual(pubkeys(a).sort());
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('gives the same pod its own cooling keys back at once', async () => {
      const { allocator, clock, store } = await setup();
      const a = await allocator.allocate('validator-0', 3);
      await allocator.release('validator-0');
      clock.advance(1000);
      const back = await allocator.allocate('validator-0', 3);
      expect(pubkeys(back)).toEqual(pubkeys(a));
      expect(store.storedCounts()).toMatchObject({ cooling: 0, allocated: 3 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('tops a returning pod up with its own cooling keys before new ones', async () => {
      const { allocator, store } = await setup();
      const a = await allocator.allocate('validator-0', 2);
      await allocator.release('validator-0');
      const more = await allocator.allocate('validator-0', 4);
      expect(pubkeys(more).slice(0, 2)).toEqual(pubkeys(a));
      expect(store.storedCounts()).toMatchObject({ allocated: 4, cooling: 0 });
    });

    it('hands out free keys oldest freed first', async () => {
      const { allocator, clock } = await setup({ reuseDelayMs: MINUTE });
      const first = await allocator.allocate('a', 1);
      const second = await allocator.allocate('b', 1);
      await allocator.release('b');
      clock.advance(1000);
      await allocator.release('a');
      clock.advance(2 * MINUTE);
      expect(pubkeys(await allocator.allocate('c', 1))).toEqual(pubkeys(second));
      expect(pubkeys(await allocator.allocate('c', 2))[1]).toBe(pubkeys(first)[0]);
    });

    it('releasing a pod with no keys releases nothing and changes nothing', async () => {
      const { allocator, raw } = await setup();
      const before = await raw();
      expect(await allocator.release('nobody')).toEqual([]);
      expect(await raw()).toEqual(before);
    });

    it('takes a cooled key from its previous holder so that pod cannot reclaim it', async () => {
      const { allocator, clock, store } = await setup({ reuseDelayMs: MINUTE });
      const a = await allocator.allocate('a', 2);
      await allocator.release('a');
      clock.advance(MINUTE);
      const b = await allocator.allocate('b', 1);
      expect(pubkeys(a)).toContain(pubkeys(b)[0]);
      const aAgain = await allocator.allocate('a', 2);
      expect(pubkeys(aAgain)).not.toContain(pubkeys(b)[0]);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('serialises concurrent calls: no key ends up in two pods', async () => {
      const { allocator, clock, store } = await setup({ reuseDelayMs: 0 });
      await allocator.allocate('seed', 10);
      await allocator.release('seed');
      clock.advance(1);
      const pods = Array.from({ length: 20 }, (_, i) => `p-${i}`);
      const results = await Promise.all(pods.map((p) => allocator.allocate(p, 2)));
      const all = results.flatMap(pubkeys);
      expect(new Set(all).size).toBe(40);
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });

  describe('group commit', () => {
    it('lets a request see what an earlier request of the same group released', async () => {
      const { allocator, store } = await setup({ reuseDelayMs: 0 });
      const a = await allocator.allocate('a', 2);
      // Queued together: the release is staged first, and the allocation takes its keys.
      const [released, b] = await Promise.all([allocator.release('a'), allocator.allocate('b', 2)]);
      expect(released).toEqual(pubkeys(a));
      expect(pubkeys(b).sort()).toEqual(pubkeys(a).sort());
      expect(store.storedCounts()).toMatchObject({ allocated: 2, cooling: 0, free: 0 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('refuses one request of a group without touching the others', async () => {
      const { allocator, store } = await setup();
      await allocator.allocate('a', 3);
      const results = await Promise.allSettled([
        allocator.allocate('b', 1),
        allocator.allocate('a', 1), // fewer than held: refused
        allocator.allocate('c', 2),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(store.storedCounts()).toMatchObject({ allocated: 6, pods: 3 });
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('fails every request of a group whose batch cannot be written, and writes none of it', async () => {
      const { allocator, store, raw } = await setup();
      await allocator.allocate('a', 1);
      const before = await raw();
      const settled = Promise.allSettled([
        allocator.allocate('b', 1),
        allocator.allocate('c', 1),
        allocator.release('a'),
      ]);
      // The group's batch now fails for real. On PostgreSQL a read that waits for a pooled
      // connection when the store closes fails only at the pool's connect timeout (10 s): pg's
      // Pool.end() leaves waiting requests waiting, so this test takes that long there.
      await store.close();
      const results = await settled;
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      expect(await raw()).toEqual(before);
    });
  });
});
