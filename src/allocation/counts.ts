import type { StoreContract } from '../store/contract.js';
import { type Counts, totalKeys } from '../store/records.js';

/** Keys per state as a person means it: a cooling key whose reuse delay has passed is free. */
export type StateCounts = Omit<Counts, 'pods'> & { total: number };

export async function stateCounts(
  store: StoreContract,
  now: number,
  reuseDelayMs: number,
): Promise<StateCounts> {
  const stored = store.storedCounts();
  const stillCooling = Math.min(stored.cooling, await store.countCoolingAfter(now - reuseDelayMs));
  const { pods: _pods, ...byState } = stored;
  return {
    ...byState,
    free: stored.free + stored.cooling - stillCooling,
    cooling: stillCooling,
    total: totalKeys(stored),
  };
}

export { totalKeys } from '../store/records.js';
