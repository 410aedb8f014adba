import type { StoreContract } from '../store/contract.js';
import type { Counts } from '../store/records.js';

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

/** Every key the store holds, in any state. */
export function totalKeys(c: Counts): number {
  const { pods: _pods, ...byState } = c;
  return Object.values(byState).reduce((sum, n) => sum + n, 0);
}
