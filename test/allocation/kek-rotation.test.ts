import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { finishRotation, rotateKek } from '../../src/allocation/kek-rotation.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import type { StoreContract } from '../../src/store/contract.js';
import { kekId } from '../../src/store/encryption.js';
import { eachBackend, type StorePlace } from '../support/backends.js';
import { secretsOf, seedKeys } from '../support/seed.js';

const OLD = Buffer.alloc(32, 0x41);
const NEW = Buffer.alloc(32, 0x42);
const OTHER = Buffer.alloc(32, 0x43);
// Encryption at rest and KEK rotation behave the same on PostgreSQL (issue 15, point 6).
const open = (place: StorePlace, kek: Buffer, extraKeks: Buffer[] = []) =>
  place.open({ kek: async () => kek, extraKeks });

type Committer = Pick<GroupCommitter, 'run'>;

const committerOf = (store: StoreContract): Committer => GroupCommitter.of(store);

/** A committer that fails from its n-th group on, as a crash between two batches would. */
function crashingAfter(store: StoreContract, n: number): Committer {
  const group = GroupCommitter.of(store);
  let calls = 0;
  return {
    run(op) {
      calls++;
      if (calls > n) return Promise.reject(new Error('crashed'));
      return group.run(op);
    },
  };
}

eachBackend((backend) => {
  describe('KEK rotation', () => {
    it('moves every secret to the new KEK; the old KEK then opens nothing', async () => {
      const place = await backend.place();
      const store = await open(place, OLD);
      const secrets = await seedKeys(store, 300);
      const progress: number[] = [];
      const result = await rotateKek(store, committerOf(store), NEW, {
        batch: 50,
        onProgress: (done) => progress.push(done),
        clock: () => 1_234_000,
      });
      expect(result).toEqual({ from: kekId(OLD), target: kekId(NEW), migrated: 300 });
      // Its audit events carry the injected clock's time, not the machine's.
      const rotation = (await store.events(0, 1000)).filter((e) => e.type === 'kek-rotation');
      expect(rotation.map((e) => [e.at, e.detail])).toEqual([
        [1_234_000, `begin ${kekId(NEW)}`],
        [1_234_000, `done ${kekId(NEW)}`],
      ]);
      expect(progress).toEqual([50, 100, 150, 200, 250, 300]);
      expect(await store.getMeta(MetaKey.migratedKekId)).toBe(kekId(NEW));
      expect(await store.getMeta(MetaKey.nextDataKey)).toBeUndefined();
      await store.close();

      await expect(open(place, OLD)).rejects.toMatchObject({ code: 'WRONG_KEK' });
      const reopened = await open(place, NEW);
      expect(await secretsOf(reopened)).toEqual(secrets);
      for await (const r of reopened.keyRecords()) expect(r.secret?.kek).toBe(kekId(NEW));
      expect((await checkStore(reopened)).problems).toEqual([]);
      // Rotating to the KEK already in use does nothing.
      expect((await rotateKek(reopened, committerOf(reopened), NEW)).migrated).toBe(0);
      await reopened.close();
    });

    it('after a crash mid-way: reads work with the new KEK, the old alone is refused, and it resumes', async () => {
      const place = await backend.place();
      const store = await open(place, OLD);
      const secrets = await seedKeys(store, 200);
      // begin + 2 of 4 batches, then the "crash"
      await expect(rotateKek(store, crashingAfter(store, 3), NEW, { batch: 50 })).rejects.toThrow(
        'crashed',
      );
      await store.close();

      await expect(open(place, OLD)).rejects.toMatchObject({ code: 'ROTATION_UNFINISHED' });
      await expect(open(place, OTHER)).rejects.toMatchObject({ code: 'WRONG_KEK' });
      const both = await open(place, OLD, [NEW]);
      expect(await secretsOf(both)).toEqual(secrets); // half old, half new: all open
      await expect(rotateKek(both, committerOf(both), OTHER)).rejects.toMatchObject({
        code: 'ROTATION_IN_PROGRESS',
      });
      await both.close();

      const resumed = await open(place, NEW);
      const finished = await finishRotation(resumed, committerOf(resumed));
      expect(finished).toEqual({ from: kekId(OLD), target: kekId(NEW), migrated: 100 });
      expect(await resumed.getMeta(MetaKey.migratedKekId)).toBe(kekId(NEW));
      expect(await secretsOf(resumed)).toEqual(secrets);
      expect(await finishRotation(resumed, committerOf(resumed))).toBeUndefined();
      await resumed.close();
    });

    it('keeps keys made while it runs, all under the new KEK at the end', async () => {
      const place = await backend.place();
      const store = await open(place, OLD);
      const secrets = await seedKeys(store, 100);
      let adding: Promise<Map<string, string>> | undefined;
      await rotateKek(store, committerOf(store), NEW, {
        batch: 20,
        onProgress: (done) => {
          if (done === 40) adding = seedKeys(store, 10);
        },
      });
      const added = (await adding) ?? new Map<string, string>();
      expect(added.size).toBe(10);
      await store.close();
      const reopened = await open(place, NEW);
      const all = await secretsOf(reopened);
      expect(all).toEqual(new Map([...secrets, ...added]));
      for await (const r of reopened.keyRecords()) expect(r.secret?.kek).toBe(kekId(NEW));
      await reopened.close();
    });
  });
});
