// An allocation pass that its group runs again (the group's commit raced another server's:
// STORE_CONFLICT) starts over: what an earlier pass fenced, and rolled back with its batch, is
// not reported as fenced. The store and its LevelDB are real; a gate in front of the commit
// lets "another server" commit first, then refuses the group's batch as a shared store would.
import { describe, expect, it } from 'vitest';
import { PkmError } from '../../src/errors.js';
import { randomKeySource } from '../../src/keys/source.js';
import { FakeClock, openTempStore } from '../helpers.js';
import { allocatorOver, pubkeys } from '../support/allocator.js';
import { gated } from '../support/gated-store.js';

describe('an allocation pass run again', () => {
  it('reports only the fence it made itself', async () => {
    const real = await openTempStore();
    const clock = new FakeClock();
    const other = allocatorOver(real, clock, randomKeySource);
    const held = pubkeys(await other.allocate('validator-0', 2, 'uid-A'));
    let raced = false;
    const store = gated(real, async () => {
      if (raced) return;
      raced = true;
      // Meanwhile the pod's old incarnation was seen to stop: its keys were released.
      await other.release('validator-0');
      throw new PkmError('STORE_CONFLICT', 'another server committed first');
    });
    const fenced: string[][] = [];
    const allocator = allocatorOver(store, clock, randomKeySource, {
      onFenced: (_pod, pubkeys) => fenced.push([...pubkeys]),
    });
    // The new incarnation: the first pass fences uid-A's keys; that batch is refused, and the
    // pass run again finds them released, with nothing to fence.
    const got = pubkeys(await allocator.allocate('validator-0', 2, 'uid-B'));
    expect(raced).toBe(true);
    expect(fenced).toEqual([]);
    // Released with a confirmed stop, they come straight back to the same name (a fenced key
    // would cool first).
    expect([...got].sort()).toEqual([...held].sort());
  });
});
