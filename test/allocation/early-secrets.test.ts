// An allocation's secrets open while its batch is written (src/allocation/early-secrets.ts):
// the answer still waits for the written batch, it hands out the secrets opened then, and the
// secrets of a batch that is not written (failed, or run again after a conflict), or whose
// hand-out fails after it, are wiped.
// The store, its LevelDB and the secret worker are real; a gate in front of the commit chooses
// when a batch is written, or fails it (test/support/gated-store.ts).
import { describe, expect, it } from 'vitest';
import type { AllocatorDeps } from '../../src/allocation/allocator.js';
import { PkmError } from '../../src/errors.js';
import { randomKeySource } from '../../src/keys/source.js';
import { FakeClock, openTempStore, until } from '../helpers.js';
import { allocatorOver } from '../support/allocator.js';
import { deferred, type Gate, gated } from '../support/gated-store.js';
import { hex, watchOpens, wiped } from '../support/opened-secrets.js';
import { seedKeys } from '../support/seed.js';

async function setup(gate: Gate, deps: Partial<AllocatorDeps> = {}) {
  const real = await openTempStore();
  const seeded = await seedKeys(real, 6);
  const { store, opened } = watchOpens(gated(real, gate));
  const allocator = allocatorOver(store, new FakeClock(), randomKeySource, deps);
  return { real, seeded, opened, allocator };
}

describe('an allocation opens its secrets while its batch is written', () => {
  it('has them open before the batch is written, answers after it, with those very secrets', async () => {
    const held = deferred();
    const entered = deferred();
    const { real, seeded, opened, allocator } = await setup(async () => {
      entered.resolve();
      await held.promise;
    });
    let answered = false;
    const answer = allocator.allocate('validator-0', 2).then((a) => {
      answered = true;
      return a;
    });
    await entered.promise;
    // Open while the batch waits to be written; no answer before it is.
    await until(() => opened.arrays.length === 1);
    expect(answered).toBe(false);
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

  it('wipes the secrets of a batch that fails, and writes nothing', async () => {
    let failed = false;
    const { real, seeded, opened, allocator } = await setup(async () => {
      if (failed) return;
      failed = true;
      await until(() => opened.arrays.length === 1);
      throw new Error('disk gone');
    });
    const before = await real.rawEntries();
    await expect(allocator.allocate('validator-0', 2)).rejects.toThrow('disk gone');
    expect(await real.rawEntries()).toEqual(before);
    // They had opened to the keys' secrets; nobody got them, and they are zeroed.
    const [first] = opened.hex;
    expect(first).toHaveLength(2);
    for (const secret of first ?? []) expect([...seeded.values()]).toContain(secret);
    await until(() => wiped(opened.arrays[0] ?? []), 5_000);
    // The next allocation is answered as ever.
    const again = await allocator.allocate('validator-0', 2);
    for (const key of again.keys) expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
  });

  it('wipes the secrets of a pass its group runs again, and hands out those of the last', async () => {
    let raced = false;
    const { opened, seeded, allocator } = await setup(async () => {
      if (raced) return;
      raced = true;
      await until(() => opened.arrays.length === 1);
      // As a shared store answers a group whose reads another server's commit overtook.
      throw new PkmError('STORE_CONFLICT', 'another server committed first');
    });
    const allocation = await allocator.allocate('validator-0', 2);
    expect(opened.arrays).toHaveLength(2);
    await until(() => wiped(opened.arrays[0] ?? []), 5_000);
    allocation.keys.forEach((key, i) => {
      expect(key.secretKey).toBe(opened.arrays[1]?.[i]);
      expect(hex(key.secretKey)).toBe(seeded.get(key.pubkey));
    });
    expect(wiped(opened.arrays[1] ?? [])).toBe(false);
  });

  it('wipes the secrets of a written batch whose hand-out fails after it', async () => {
    const { real, opened, allocator } = await setup(async () => {}, {
      onAllocated: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(allocator.allocate('validator-0', 3)).rejects.toThrow('metrics broke');
    // The batch was written: the keys are the pod's, their secrets went to nobody.
    expect(real.storedCounts()).toMatchObject({ allocated: 3 });
    await until(() => opened.arrays.length === 1, 5_000);
    await until(() => wiped(opened.arrays[0] ?? []), 5_000);
  });
});
