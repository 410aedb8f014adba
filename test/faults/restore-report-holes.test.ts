// Faults a second adversarial review found in what an honest agent gets after a restore
// (reported keys, commit 622da94), kept as reproductions: each asserts the safe behaviour, and
// fails while the fault is there.
import { describe, expect, it } from 'vitest';
import { fenceRestored } from '../../src/allocation/restore.js';
import { randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import { FakeClock, MINUTE, openTempStore } from '../helpers.js';
import { allocatorOver, proving, pubkeys } from '../support/allocator.js';
import { seedKeys } from '../support/seed.js';

describe('break: an honest pod after a restore', () => {
  it('R1 a pod that proved the keys it runs gets those keys at its next start, not others on top', async () => {
    // The backup shows p's two keys free (p got them after it was taken). After the restore
    // they are fenced; p's agent re-asserts them with a proof each, as the restore asks
    // ("holders re-assert"), and they become `reported` by p: counted toward p's
    // --max-keys-per-pod, never handed out. p's next start (its own release, then
    // pkm client --count 2) is handed two more keys, so p now runs four; with
    // --max-keys-per-pod 3 it could not start at all (COUNT_OUT_OF_RANGE).
    const store = await openTempStore();
    const clock = new FakeClock();
    const mine = [...(await seedKeys(store, 2)).keys()];
    await fenceRestored(store, clock.now());
    const config = { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 4, maxTotalKeys: undefined };
    const allocator = allocatorOver(store, clock, randomKeySource, { restored: true, config });
    const beat = await allocator.heartbeat('p', mine, proving(mine));
    expect(beat.refused).toEqual([]);
    await allocator.release('p', { stop: 'confirmed' });
    const next = await allocator.allocate('p', 2);
    expect(pubkeys(next).sort()).toEqual([...mine].sort());
    expect((await checkStore(store)).problems).toEqual([]);
  });
});
