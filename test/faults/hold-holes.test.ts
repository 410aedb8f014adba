// Faults a second adversarial review found in the hold on refused heartbeat claims (commit
// 78e8719: "a claim refused for want of a proof holds the key back from every pod for 10
// minutes"), kept as reproductions: each asserts the safe behaviour, and fails while the fault
// is there.
import { describe, expect, it } from 'vitest';
import { randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import { FakeClock, MINUTE, openTempStore } from '../helpers.js';
import { allocatorOver, proving, pubkeys } from '../support/allocator.js';
import { seedKeys } from '../support/seed.js';

describe('break: the hold on refused claims', () => {
  it('H1 the same pod name does not take back, through an allocation, a key held back for a refused claim', async () => {
    // x released its key (its own release: stop confirmed), so the same name may have it back
    // at once. p's heartbeat then claims it without a proof: the claim is refused, and the key
    // is "held back from every pod" while p may be proving it. x asks again and gets it at
    // once: the reclaim path never looks at the hold. When p's proof lands, two pods run it.
    const store = await openTempStore();
    const clock = new FakeClock();
    const allocator = allocatorOver(store, clock, randomKeySource);
    const [k] = pubkeys(await allocator.allocate('x', 1));
    await allocator.release('x', { stop: 'confirmed' });
    const refused = await allocator.heartbeat('p', [k as string]);
    expect(refused.refused).toEqual([k]); // held back now: p may be proving it
    const again = await allocator.allocate('x', 1);
    const proven = await allocator.heartbeat('p', [k as string], proving([k as string]));
    // x did not get k while it was held; p's proof then finds k cooling under x within the reuse
    // delay: a conflict (issue 12: "even with a valid proof"), never p's.
    expect(pubkeys(again)).not.toContain(k);
    expect(proven.reclaimed).toEqual([]);
    expect(proven.conflicts).toEqual([k]);
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('H2 the same pod name does not take back, through its agent’s heartbeat, a key held back for a refused claim', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const allocator = allocatorOver(store, clock, randomKeySource);
    const [k] = pubkeys(await allocator.allocate('x', 1));
    await allocator.release('x', { stop: 'confirmed' });
    expect((await allocator.heartbeat('p', [k as string])).refused).toEqual([k]);
    // x's new container kept its keystores; its agent reports k: reclaimed, hold or not.
    const back = await allocator.heartbeat('x', [k as string]);
    expect(back.reclaimed).not.toContain(k);
  });

  it('H3 after a restart, the reporter’s next report holds a refused free key again', async () => {
    // The hold is in memory: a restart ends it. An agent re-asserts at once when the boot token
    // changes, and that report, refused again, holds the key again before anyone else asks.
    // (Before that report, a key the store shows as never handed out may go to a new pod: the
    // README's "a raw copy of the store is not a restore".)
    const store = await openTempStore();
    const clock = new FakeClock();
    const [k] = [...(await seedKeys(store, 1)).keys()];
    const before = allocatorOver(store, clock, randomKeySource);
    expect((await before.heartbeat('p', [k as string])).refused).toEqual([k]);
    clock.advance(MINUTE);
    const after = allocatorOver(store, clock, randomKeySource, { resyncWindowMs: MINUTE });
    expect((await after.heartbeat('p', [k as string])).refused).toEqual([k]);
    const q = await after.allocate('q', 1);
    expect(pubkeys(q)).not.toContain(k);
  });

  it('H4 sanity: the hold does keep a refused free key from another pod without a restart', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const [k] = [...(await seedKeys(store, 1)).keys()];
    const allocator = allocatorOver(store, clock, randomKeySource);
    expect((await allocator.heartbeat('p', [k as string])).refused).toEqual([k]);
    const q = await allocator.allocate('q', 1);
    expect(pubkeys(q)).not.toContain(k);
  });
});
