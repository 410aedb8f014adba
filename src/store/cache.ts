// A bounded write-through cache of decoded records. Safe because the store is the only writer
// of its LevelDB and updates the cache after every committed batch. A value read from LevelDB
// while a batch was being written may be the one from before it: it is cached only if no batch
// that ended after the read started wrote that record. The store tells the cache which records
// each batch wrote (written()); a read too old for what the cache remembers is not cached.
// (A rule that dropped every read that overlapped any batch dropped the window's prefetch of
// hundreds of records whenever a batch was written meanwhile: issue 17, point 4.)

import { dropCount, makeRoom } from '../bounded-map.js';

/**
 * PKM_FREEZE_RECORDS=1, which the test suite sets (vitest.config.ts, and every pkm it spawns
 * inherits it): a cached record is frozen through and through, so that code changing one in
 * place (through a cast, Object.assign, a mutable parameter) throws in the tests. Never set in
 * production, where the types alone keep records unchanged (see set()).
 */
const FREEZE_FOR_TESTS = process.env.PKM_FREEZE_RECORDS === '1';

function deepFreeze(value: object): void {
  for (const field of Object.values(value))
    if (typeof field === 'object' && field !== null) deepFreeze(field);
  Object.freeze(value);
}

/** Batches remembered; a read that started before the oldest of them is not cached. */
const REMEMBERED_WRITES = 64;

export class RecordCache<V extends object> {
  private readonly map = new Map<string, V>();
  /** The last batches, oldest first: the commit count once each ended, and what it wrote. */
  private readonly writes: Array<{ readonly end: number; readonly keys: ReadonlySet<string> }> = [];
  /** The end of the last batch no longer in `writes` (0: none forgotten yet). */
  private forgottenEnd = 0;

  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /**
   * Caches a value read from LevelDB by a read that started at commit count `seen`, unless a
   * batch that ended after that wrote it (the value may be older than the batch's).
   */
  fill(key: string, value: V, seen: number): void {
    if (this.fresh(key, seen)) this.set(key, value);
  }

  /**
   * fill, but only while the cache has room, the room a full cache's write makes for itself
   * (makeRoom drops dropCount at once) aside: a scan never evicts what requests use.
   */
  fillIfRoom(key: string, value: V, seen: number): void {
    if (this.map.size < this.capacity - dropCount(this.capacity)) this.fill(key, value, seen);
  }

  /** Caches a value just written (or forgets a deleted one). */
  set(key: string, value: V | undefined): void {
    this.map.delete(key);
    if (value === undefined) return;
    makeRoom(this.map, this.capacity);
    // Callers share the cached object: the records' types are read-only through and through
    // (records.ts), so no code changes one in place. Freezing each one too cost an allocation
    // 3% of its main-thread time, and gave V8 a second shape of every record to deal with; the
    // test suite freezes them (FREEZE_FOR_TESTS), to catch what the types cannot see.
    if (FREEZE_FOR_TESTS) deepFreeze(value);
    this.map.set(key, value);
  }

  /** A batch that wrote these keys ended; the store's commit count is now `end`. */
  written(keys: Iterable<string>, end: number): void {
    this.writes.push({ end, keys: new Set(keys) });
    if (this.writes.length > REMEMBERED_WRITES) {
      const forgotten = this.writes.shift();
      if (forgotten) this.forgottenEnd = forgotten.end;
    }
  }

  /**
   * Whether a batch that ended after commit count `seen` may have written `key`: true for one
   * it remembers, and for any once it has forgotten batches that ended after `seen`.
   */
  writtenSince(key: string, seen: number): boolean {
    return !this.fresh(key, seen);
  }

  private fresh(key: string, seen: number): boolean {
    // A batch this cache no longer remembers may have ended after the read started.
    if (seen < this.forgottenEnd) return false;
    for (const w of this.writes) if (w.end > seen && w.keys.has(key)) return false;
    return true;
  }
}
