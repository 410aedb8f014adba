// A bounded write-through cache of decoded records. Safe because the store is the only writer
// of its LevelDB and updates the cache after every committed batch; a read that raced a commit
// is not cached (the caller passes the commit count it saw before reading).

export class RecordCache<V extends object> {
  private readonly map = new Map<string, V>();

  constructor(
    private readonly capacity: number,
    private readonly commitCount: () => number,
  ) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /** Caches a value read from LevelDB, unless a commit happened since `seen`. */
  fill(key: string, value: V, seen: number): void {
    if (seen === this.commitCount()) this.set(key, value);
  }

  /** fill, but only while the cache has room: a scan never evicts what requests use. */
  fillIfRoom(key: string, value: V, seen: number): void {
    if (this.map.size < this.capacity) this.fill(key, value, seen);
  }

  /** Caches a value just written (or forgets a deleted one). */
  set(key: string, value: V | undefined): void {
    this.map.delete(key);
    if (value === undefined) return;
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    // Callers share the cached object: freeze it so none can change it in place.
    for (const field of Object.values(value)) if (Array.isArray(field)) Object.freeze(field);
    this.map.set(key, Object.freeze(value));
  }
}
