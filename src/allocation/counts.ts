import type { Counts } from '../store/records.js';
import type { Store } from '../store/store.js';

/** Keys per state as a person means it: a cooling key whose reuse delay has passed is free. */
export type StateCounts = Omit<Counts, 'pods'> & { total: number };

export async function stateCounts(
  store: Store,
  now: number,
  reuseDelayMs: number,
): Promise<StateCounts> {
  const stored = store.storedCounts();
  const stillCooling = Math.min(stored.cooling, await store.countCoolingAfter(now - reuseDelayMs));
  return {
    free: stored.free + stored.cooling - stillCooling,
    allocated: stored.allocated,
    cooling: stillCooling,
    retired: stored.retired,
    total: stored.free + stored.allocated + stored.cooling + stored.retired,
  };
}
