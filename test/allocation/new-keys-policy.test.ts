// --new-keys never at the allocator: send mode's depositor is never asked for keys, and a
// heartbeat still recognises a reported mnemonic key (deriving an index to recognise a key the
// pod runs makes no key for anyone; it moves the next index past it, which only keeps it safe).
import { describe, expect, it } from 'vitest';
import type { AllocatorConfig } from '../../src/allocation/allocator.js';
import { FakeClock } from '../helpers.js';
import { allocatorOver, DELAY, mnemonic, proving } from '../support/allocator.js';
import { eachBackend } from '../support/backends.js';

const never: AllocatorConfig = {
  reuseDelayMs: DELAY,
  maxKeysPerPod: 64,
  maxTotalKeys: undefined,
  newKeys: 'never',
};

eachBackend((backend) => {
  describe('--new-keys never (allocator)', () => {
    it('never asks send mode’s depositor for keys: POOL_EXHAUSTED, and the store unchanged', async () => {
      const place = await backend.place();
      const store = await place.open();
      await store.bindKeySource(mnemonic.fingerprint);
      const asked: number[] = [];
      const allocator = allocatorOver(store, new FakeClock(), mnemonic, {
        config: never,
        depositor: {
          provide: async (count) => {
            asked.push(count);
          },
        },
      });
      const before = await place.raw();
      await expect(allocator.allocate('a', 3)).rejects.toMatchObject({
        code: 'POOL_EXHAUSTED',
        retryAfter: 60,
      });
      expect(asked).toEqual([]);
      expect(await place.raw()).toEqual(before);
      expect(store.nextKeyIndex()).toBe(0);
    });

    it('recognises a reported mnemonic key (its index moves past), yet still derives none for a pod', async () => {
      const place = await backend.place();
      const store = await place.open();
      await store.bindKeySource(mnemonic.fingerprint);
      const allocator = allocatorOver(store, new FakeClock(), mnemonic, {
        config: never,
      });
      const reported = mnemonic.pubkeyAt?.(3) ?? '';
      const beat = await allocator.heartbeat('elsewhere', [reported], proving([reported]));
      expect(beat.reported).toEqual([reported]);
      expect(store.nextKeyIndex()).toBe(4);
      expect(await store.getKey(reported)).toMatchObject({ state: 'reported', pod: 'elsewhere' });
      const before = await place.raw();
      await expect(allocator.allocate('a', 1)).rejects.toMatchObject({ code: 'POOL_EXHAUSTED' });
      expect(await place.raw()).toEqual(before);
    });
  });
});
