// Room in a Map kept in insertion order (oldest first) with a bound on its size: the record
// caches, the token cache, the rate limiter's buckets.
//
// Why not drop the one oldest entry at each insert: V8's Map leaves a deleted entry in place, a
// hole that iteration skips, until the table is rebuilt once it fills. Dropping entries from the
// front piles holes up there, and each `keys().next()` walks over all of them: at 20,000 entries
// that was about 16 us an insert, against about 1 us below the bound (bench/record-cache.ts).
// Dropping a sixteenth at once walks them once per that many inserts.

/** The share of a full map's entries dropped at once. */
const DROP_SHARE = 16;

/** How many entries makeRoom drops from a full map of this capacity. */
export function dropCount(capacity: number): number {
  return Math.max(1, Math.floor(capacity / DROP_SHARE));
}

/**
 * Makes room for one more entry in `map` if it holds `capacity` or more: drops its oldest
 * entries (the first inserted, or re-inserted), a sixteenth of `capacity` at least.
 */
export function makeRoom<K, V>(map: Map<K, V>, capacity: number): void {
  if (map.size < capacity) return;
  let drop = map.size - capacity + dropCount(capacity);
  for (const key of map.keys()) {
    map.delete(key);
    if (--drop === 0) break;
  }
}
