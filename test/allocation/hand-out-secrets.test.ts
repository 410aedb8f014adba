// An allocation opens the secrets it hands out only once its batch is written (DESIGN.md
// "Store": nothing is handed out before it is synced), and only for the pass that is written:
// a batch that fails, a pass its group runs again, or a hand-out refused before the answer
// leaves no plaintext behind.
// The store and its LevelDB are real; a gate in front of the commit chooses when a batch is
// written, or fails it (test/support/gated-store.ts).
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { AllocatorDeps } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { rotateKek } from '../../src/allocation/kek-rotation.js';
import { KeyMoves } from '../../src/allocation/moves.js';
import { PkmError } from '../../src/errors.js';
import { randomKeySource } from '../../src/keys/source.js';
import { MetaKey } from '../../src/store/buckets.js';
import type { StoreContract } from '../../src/store/contract.js';
import { FakeClock, openTempStore } from '../helpers.js';
import { allocatorOver } from '../support/allocator.js';
import { deferred, type Gate, gated } from '../support/gated-store.js';
import { hex, watchOpens } from '../support/opened-secrets.js';
import { seedKeys } from '../support/seed.js';

async function setup(gate: Gate, deps: Partial<AllocatorDeps> = {}) {
  const real = await openTempStore();
  const seeded = await seedKeys(real, 6);
  const { store, opened } = watchOpens(gated(real, gate));
  const allocator = allocatorOver(store, new FakeClock(), randomKeySource, deps);
  return { real, seeded, opened, allocator };
}

describe('an allocation opens its secrets once its batch is written', () => {
  it('opens none while the batch waits, then hands out those it opened', async () => {
    const held = deferred();
    const entered = deferred();
    const { real, seeded, opened, allocator } = await setup(async () => {
      entered.resolve();
      await held.promise;
    });
    const answer = allocator.allocate('validator-0', 2);
    await entered.promise;
    for (let turn = 0; turn < 20; turn++) await nextTurn();
    expect(opened.arrays).toHaveLength(0);
    expect(real.storedCounts()).toMatchObject({ free: 6, allocated: 0 });
    held.resolve();
    const allocation = await answer;
    expect(real.storedCounts()).toMatchObject({ free: 4, allocated: 2 });
    // Opened once, and those are what the pod got, each its key's sealed secret.
    expect(opened.arrays).toHaveLength(1);
    allocation.keys.forEach((key, i) => {
      expect(key.secretKey).toBe(opened.arrays[0]?.[i]);
      expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
    });
  });

  it('opens none for a batch that fails, and writes nothing', async () => {
    let failed = false;
    const { real, seeded, opened, allocator } = await setup(async () => {
      if (failed) return;
      failed = true;
      throw new Error('disk gone');
    });
    const before = await real.rawEntries();
    await expect(allocator.allocate('validator-0', 2)).rejects.toThrow('disk gone');
    expect(await real.rawEntries()).toEqual(before);
    expect(opened.arrays).toHaveLength(0);
    // The next allocation is answered as ever.
    const again = await allocator.allocate('validator-0', 2);
    for (const key of again.keys) expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
  });

  it('opens them once for a pass its group runs again: the written one', async () => {
    let raced = false;
    const { real, opened, seeded, allocator } = await setup(async () => {
      if (raced) return;
      raced = true;
      // As a shared store answers a group whose reads another server's commit overtook.
      throw new PkmError('STORE_CONFLICT', 'another server committed first');
    });
    const allocation = await allocator.allocate('validator-0', 2);
    expect(raced).toBe(true);
    expect(opened.arrays).toHaveLength(1);
    expect(real.storedCounts()).toMatchObject({ free: 4, allocated: 2 });
    allocation.keys.forEach((key, i) => {
      expect(key.secretKey).toBe(opened.arrays[0]?.[i]);
      expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
    });
  });

  it('opens none when the hand-out fails before it, the keys staying with the pod', async () => {
    const { real, opened, allocator } = await setup(async () => {}, {
      onAllocated: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(allocator.allocate('validator-0', 3)).rejects.toThrow('metrics broke');
    expect(real.storedCounts()).toMatchObject({ allocated: 3 });
    expect(opened.arrays).toHaveLength(0);
  });

  it('hands them out when a KEK rotation ends while the answer waits for the genesis root', async () => {
    const real = await openTempStore();
    const seeded = await seedKeys(real, 6);
    // The root's first read waits until the rotation is done, as a slow read would.
    const reading = deferred();
    const rotated = deferred();
    const slowRoot: StoreContract = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'getMeta')
          return async (key: string) => {
            if (key === MetaKey.genesisValidatorsRoot) {
              reading.resolve();
              await rotated.promise;
            }
            return target.getMeta(key);
          };
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const allocator = allocatorOver(slowRoot, new FakeClock(), randomKeySource);
    const answer = allocator.allocate('validator-0', 2);
    await reading.promise;
    // The batch is written; the rotation reseals every record and retires the old data key.
    const oldKek = real.keyRing().sealingKek;
    await rotateKek(slowRoot, GroupCommitter.of(slowRoot), randomBytes(32));
    expect(real.keyRing().dataKey(oldKek)).toBeUndefined();
    rotated.resolve();
    const allocation = await answer;
    expect(allocation.keys).toHaveLength(2);
    for (const key of allocation.keys) expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
  });

  it('leaves no failure unheard when the secrets do not open and the root read fails', async () => {
    const real = await openTempStore();
    await seedKeys(real, 2);
    let rootAsked = false;
    const broken: StoreContract = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'getMeta')
          return async (key: string) => {
            if (key !== MetaKey.genesisValidatorsRoot) return target.getMeta(key);
            rootAsked = true;
            throw new Error('root read failed');
          };
        if (prop === 'secrets')
          return {
            ...target.secrets,
            openMany: () => {
              throw new PkmError('STORE_CORRUPT', 'does not open');
            },
          };
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const unheard: unknown[] = [];
    const listen = (reason: unknown) => unheard.push(reason);
    process.on('unhandledRejection', listen);
    try {
      const allocator = allocatorOver(broken, new FakeClock(), randomKeySource);
      await expect(allocator.allocate('validator-0', 2)).rejects.toMatchObject({
        code: 'STORE_CORRUPT',
      });
      // The root was never asked for: nothing was left to fail unheard.
      for (let turn = 0; turn < 20; turn++) await nextTurn();
      expect(unheard).toEqual([]);
      expect(rootAsked).toBe(false);
    } finally {
      process.off('unhandledRejection', listen);
    }
  });

  it("gives an agent its pod's secrets when a KEK rotation ends between their read and their opening", async () => {
    const real = await openTempStore();
    const seeded = await seedKeys(real, 4);
    const clock = new FakeClock();
    const beacon = { genesisValidatorsRoot: `0x${'ab'.repeat(32)}` };
    const allocator = allocatorOver(real, clock, randomKeySource, { beacon });
    const given = await allocator.allocate('validator-0', 2);
    // The assignment's first read of the pod's records waits for the rotation to end.
    const reading = deferred();
    const rotated = deferred();
    let first = true;
    const slowRead: StoreContract = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'getKeys')
          return async (pubkeys: readonly string[]) => {
            const records = await target.getKeys(pubkeys);
            if (first && pubkeys.length > 0) {
              first = false;
              reading.resolve();
              await rotated.promise;
            }
            return records;
          };
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const moves = new KeyMoves({
      store: slowRead,
      group: GroupCommitter.of(real),
      clock: clock.now,
      allocator,
      beacon,
    });
    const assignment = moves.assignment('validator-0', new Set());
    await reading.promise;
    const oldKek = real.keyRing().sealingKek;
    await rotateKek(real, GroupCommitter.of(real), randomBytes(32));
    expect(real.keyRing().dataKey(oldKek)).toBeUndefined();
    rotated.resolve();
    const { keys } = await assignment;
    expect(keys.map((k) => k.pubkey).sort()).toEqual(given.keys.map((k) => k.pubkey).sort());
    for (const { pubkey, key } of keys) {
      if (!key) throw new Error(`no secret for ${pubkey}`);
      expect(hex(key.secretKey)).toBe(seeded.get(pubkey));
    }
  });
});
