// The safety rules under the faults real clusters have: a restored mnemonic store, a wall clock
// that steps, a restart, a request that throws after staging (DESIGN.md "Safety rules"); on
// both backends.
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { fenceRestored } from '../../src/allocation/restore.js';
import { randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import { FakeClock, MINUTE } from '../helpers.js';
import { allocatorOver, DELAY, mnemonic, proving, pubkeys } from '../support/allocator.js';
import { eachBackend } from '../support/backends.js';
import { seedKeys } from '../support/seed.js';

// BIP-39's own test mnemonic: public, holds nothing.

eachBackend((backend) => {
  // On PostgreSQL the backup is a copy of the database (pkm's backup and restore commands are
  // LevelDB's), restored as `pkm db restore` does: fenced, marked restored, checked.
  describe('a mnemonic store restored from an older copy', () => {
    it('never hands out again the indexes a pod got after the backup: its heartbeat moves the next index past them', async () => {
      const place = await backend.place();
      const clock = new FakeClock();
      let store = await place.open();
      await store.bindKeySource(mnemonic.fingerprint);
      const first = allocatorOver(store, clock, mnemonic);
      const a = pubkeys(await first.allocate('a', 2));
      await store.close();
      const backup = await place.backup();
      store = await place.open();
      const b = pubkeys(await allocatorOver(store, clock, mnemonic).allocate('b', 3));
      await store.close();

      const restored = await backup.restore((s) => fenceRestored(s, clock.now()));
      expect(restored.fenced).toBe(0); // the backup held no free or cooling key; a keeps its keys
      store = await restored.place.open();
      expect(await store.getMeta('restored-at')).toBeDefined();
      const after = allocatorOver(store, clock, mnemonic, { restored: true });
      // Until a full reuse delay has passed, nothing is derived: b may still be reporting.
      await expect(after.allocate('c', 1)).rejects.toMatchObject({ code: 'RESYNCING' });
      const beat = await after.heartbeat('b', b, proving(b));
      expect(beat.reported.sort()).toEqual([...b].sort());
      expect(store.nextKeyIndex()).toBe(5);
      clock.advance(DELAY);
      const c = pubkeys(await after.allocate('c', 3));
      expect(c.filter((k) => b.includes(k) || a.includes(k))).toEqual([]);
      // b's keys are recorded as b's, with their secret and path, and never handed out.
      for (const pk of b)
        expect(await store.getKey(pk)).toMatchObject({ state: 'reported', pod: 'b' });
      expect((await checkStore(store)).problems).toEqual([]);
      expect(await store.getMeta('restored-at')).toBeUndefined(); // the hold is over
      await store.close();
    });

    it('fences the free and cooling keys a backup holds: nobody gets them before the reuse delay', async () => {
      const place = await backend.place();
      const clock = new FakeClock();
      let store = await place.open();
      const before = allocatorOver(store, clock, randomKeySource);
      const held = pubkeys(await before.allocate('a', 2));
      await before.release('a');
      clock.advance(DELAY); // cooled: free for anyone, in the backup's view
      // And a key no pod ever held (a deposited one, say): free, with no holder to name.
      const [never] = [...(await seedKeys(store, 1)).keys()];
      await store.close();
      const restored = await (await place.backup()).restore((s) => fenceRestored(s, clock.now()));
      expect(restored.fenced).toBe(3);
      store = await restored.place.open();
      expect(store.storedCounts()).toMatchObject({ cooling: 3, fenced: 3, free: 0 });
      expect(await store.getKey(never ?? '')).toMatchObject({ state: 'cooling', stop: 'fenced' });
      const after = allocatorOver(store, clock, randomKeySource, { restored: true });
      // Random keys may still be made; the fenced ones stay put, even for their own pod.
      expect(pubkeys(await after.allocate('a', 2)).some((k) => held.includes(k))).toBe(false);
      clock.advance(DELAY);
      expect(pubkeys(await after.allocate('z', 3)).sort()).toEqual([...held, never].sort());
      expect((await checkStore(store)).problems).toEqual([]);
      await store.close();
    });
  });

  describe('elapsed time, not the wall clock', () => {
    it('a wall clock stepped forward releases nothing early', async () => {
      const store = await backend.open();
      const clock = new FakeClock();
      const allocator = allocatorOver(store, clock, randomKeySource);
      const [key] = pubkeys(await allocator.allocate('a', 1));
      await allocator.release('a', { stop: 'unconfirmed' });
      clock.jumpWall(DELAY * 3);
      expect(pubkeys(await allocator.allocate('b', 1))).not.toContain(key);
      clock.advance(DELAY);
      expect(pubkeys(await allocator.allocate('c', 1))).toEqual([key]);
    });

    it('a restart never shortens a cooling: each cooling key waits a full reuse delay after the start', async () => {
      const place = await backend.place();
      const clock = new FakeClock();
      let store = await place.open();
      const first = allocatorOver(store, clock, randomKeySource);
      const [key] = pubkeys(await first.allocate('a', 1));
      await first.release('a', { stop: 'unconfirmed' });
      await store.close();
      clock.jumpWall(DELAY); // the server was down; its wall clock says the delay passed
      store = await place.open();
      const second = allocatorOver(store, clock, randomKeySource);
      expect(pubkeys(await second.allocate('b', 1))).not.toContain(key);
      clock.advance(DELAY - 1);
      expect(pubkeys(await second.allocate('c', 1))).not.toContain(key);
      clock.advance(1);
      expect(pubkeys(await second.allocate('d', 1))).toEqual([key]);
      await store.close();
    });
  });

  describe('derivation after a start', () => {
    it('with a mnemonic, waits out the resync window (holders report first); random keys do not wait', async () => {
      const clock = new FakeClock();
      const derived = allocatorOver(await backend.open(), clock, mnemonic, {
        resyncWindowMs: MINUTE,
      });
      const refused = derived.allocate('a', 1);
      await expect(refused).rejects.toMatchObject({ code: 'RESYNCING', retryAfter: 60 });
      const random = allocatorOver(await backend.open(), clock, randomKeySource, {
        resyncWindowMs: MINUTE,
      });
      expect((await random.allocate('a', 1)).keys).toHaveLength(1);
      clock.advance(MINUTE);
      expect((await derived.allocate('a', 1)).keys[0]?.path).toBe('m/12381/3600/0/0/0');
    });

    it('a heartbeat of a key the store lost, derived at an index ahead, moves the next index past it', async () => {
      const store = await backend.open();
      const clock = new FakeClock();
      const allocator = allocatorOver(store, clock, mnemonic);
      const lost = mnemonic.pubkeyAt?.(7);
      if (lost === undefined) throw new Error('a mnemonic source derives public keys');
      const beat = await allocator.heartbeat('b', [lost], proving([lost]));
      expect(beat.reported).toEqual([lost]);
      expect(store.nextKeyIndex()).toBe(8);
      const given = await allocator.allocate('c', 1);
      expect(given.keys[0]?.path).toBe('m/12381/3600/8/0/0');
      expect(await store.getKey(lost)).toMatchObject({
        state: 'reported',
        path: 'm/12381/3600/7/0/0',
      });
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });

  describe('the group committer', () => {
    it('keeps nothing of a request that throws after staging; the rest of its group commits', async () => {
      const store = await backend.open();
      const group = GroupCommitter.of(store);
      const clock = new FakeClock();
      const allocator = new Allocator({
        store,
        group,
        clock: clock.now,
        monotonic: clock.monotonic,
        keySource: randomKeySource,
        config: { reuseDelayMs: DELAY, maxKeysPerPod: 64, maxTotalKeys: undefined },
      });
      const [key] = pubkeys(await allocator.allocate('a', 1));
      const before = await store.getKey(key ?? '');
      if (!before) throw new Error('setup');
      const failing = group.run(async (tx) => {
        tx.stage({
          keys: [{ before, after: { ...before, state: 'retired', since: 1 } }],
          pods: [],
        });
        throw new Error('a check after staging failed');
      });
      const other = allocator.allocate('b', 1);
      await expect(failing).rejects.toThrow('a check after staging failed');
      expect((await other).keys).toHaveLength(1);
      expect(await store.getKey(key ?? '')).toEqual(before);
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });
});
