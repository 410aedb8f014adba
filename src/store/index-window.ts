// An in-memory window over the head of a time index (unallocated, cooling).
//
// The indexes are queues: entries leave from the front. Reading the head from LevelDB on every
// allocation costs a round trip under the allocation lock, and each read skips the tombstones
// of every entry deleted since the last compaction. The window keeps the lowest live keys in
// memory instead. It stays exact because the store is the only writer (LevelDB's LOCK file)
// and every write passes through Store.commit(), which reports its index changes here.
//
// Once it holds fewer keys than its size, the window reads on past its edge in the background
// (readAhead), so that allocations find their keys here and not behind a read: a refill made
// while an allocation waited took 20 ms (7 for the keys, 13 for their records), and stalled the
// group commit's whole pipeline, a quarter of bench/allocate's time with recycled keys (issue
// 17, point 4). A read ahead took about 40 ms there, while the allocations used half a window;
// so it starts a whole window ahead. The read races the commits made meanwhile; each of them is
// journaled, and replayed onto what the read found (merge), so the window stays exact.

import { timeIndexPubkey } from './buckets.js';
import type { PassOver } from './contract.js';

/** The part of a LevelDB sublevel the window reads. */
export interface KeyRange {
  keys(range: { limit: number; gte?: string; gt?: string }): { all(): Promise<string[]> };
}

/** The index changes of one commit, as Store.commit() reports them (apply). */
interface Applied {
  readonly deleted: readonly string[];
  readonly inserted: readonly string[];
}

/** A read past the edge, in the background, and the commits made since it began. */
interface ReadAhead {
  /** The edge when it began: it reads the keys after it. */
  readonly from: string;
  /** The window's `layout` when it began: a change to it drops the read. */
  readonly layout: number;
  readonly journal: Applied[];
  /** Settles once the keys read are merged, or dropped; it never rejects. */
  done: Promise<void>;
}

export class IndexWindow {
  /** Live keys, sorted; every live key at or below `edge` is here. */
  private keys: string[] = [];
  /** Undefined until loaded. */
  private edge: string | undefined;
  /** True when the index holds nothing beyond `edge`. */
  private complete = false;
  /** Bumped whenever `keys` and `edge` are replaced or cut (a refill, the bound in apply). */
  private layout = 0;
  private ahead: ReadAhead | undefined;
  /**
   * The pubkey of each key in `keys`, sliced once: a pool read tests the keys at the front
   * against the group's staged keys, again for every request of the group, and a Map lookup
   * with the same string is much cheaper than with a new slice of it each time.
   */
  private readonly pubkeys = new Map<string, string>();
  /** Bumped whenever `keys` changes: what was learnt of them holds while it stays. */
  private version = 0;
  /**
   * How many keys at the front the last pass-over named, all of them: a group's requests each
   * read the pool past the keys the requests before them took, and a scan from the front
   * again for each was O(group^2) (issue 17, point 4). Held while the window and the
   * pass-over (only grown: its removals unchanged) are as they were.
   */
  private passed:
    | {
        readonly over: PassOver;
        readonly removals: number;
        readonly version: number;
        readonly count: number;
      }
    | undefined;

  constructor(
    private readonly sub: KeyRange,
    private readonly size: number,
    /** A counter bumped by every commit, to drop a refill that raced one. */
    private readonly commitCount: () => number,
    /** Runs after each refill with the keys read (the store prefetches their records). */
    private readonly onRefill: (keys: readonly string[]) => Promise<void>,
  ) {}

  /**
   * Up to `limit` lowest live keys, all at most `lte` when given, passing over (and not
   * counting) those whose pubkey `passOver` names.
   */
  async read(limit: number, lte?: string, passOver?: PassOver): Promise<string[]> {
    const skip =
      passOver === undefined || passOver.size === 0
        ? undefined
        : (pubkey: string) => passOver.has(pubkey);
    for (let attempt = 0; attempt < 3; attempt++) {
      let answer = this.fromMemory(limit, lte, skip, passOver);
      if (answer) return answer;
      // A read ahead under way may bring what is missing: waited for rather than read twice.
      if (this.ahead) {
        await this.ahead.done;
        answer = this.fromMemory(limit, lte, skip, passOver);
        if (answer) return answer;
      }
      // Twice as far each time: the keys passed over may fill what was read.
      await this.refill(Math.max(limit, this.size) * 2 ** attempt);
    }
    // Commits kept racing the refill: read the index directly, in steps past skipped keys.
    const out: string[] = [];
    for (let from: string | undefined, step = 2 * limit; ; step *= 2) {
      const range = from === undefined ? { limit: step } : { limit: step, gt: from };
      const keys = await this.sub.keys(range).all();
      for (const key of keys) {
        if (out.length === limit || (lte !== undefined && key > lte)) return out;
        if (!skip?.(timeIndexPubkey(key))) out.push(key);
      }
      if (keys.length < step) return out;
      from = keys.at(-1);
    }
  }

  /** Called by the store after a batch has been written. */
  apply(deleted: readonly string[], inserted: readonly string[]): void {
    if (this.edge === undefined) return;
    // A read ahead may have begun before this commit was written: merge replays it.
    this.ahead?.journal.push({ deleted, inserted });
    this.version++;
    // What it remembered is stale now; let go of the pass-over (a group's staged records).
    this.passed = undefined;
    const { keys, edge, complete } = this;
    // The keys a commit deletes are mostly the oldest, at the front: found there by lookup, the
    // rest by binary search. Then the window is rebuilt in one pass, or just cut at the front,
    // not spliced once per key: each splice moved the rest of the array, and one commit's
    // splices and searches took about 300 us of the event loop (issue 17, point 4).
    const dropped = new Set(deleted);
    let front = 0;
    while (front < keys.length && dropped.has(keys[front] as string)) front++;
    const gone = new Set<number>();
    if (front < dropped.size) {
      for (const key of dropped) {
        const i = this.position(key);
        if (i >= front && keys[i] === key) gone.add(i);
      }
    }
    for (const key of deleted) this.pubkeys.delete(key);
    const added = inserted.filter((key) => complete || key <= edge).sort(); // past it: a refill reads it
    if (gone.size > 0 || added.length > 0) this.keys = rebuilt(keys, front, gone, added);
    else if (front > 0) this.keys = keys.slice(front);
    if (this.keys.length > 4 * this.size) {
      // Bound memory: forget the tail; it is read again when needed.
      this.keys.length = 2 * this.size;
      this.edge = this.keys.at(-1);
      this.complete = false;
      this.pubkeys.clear();
      this.layout++;
    }
    this.readAheadIfLow();
  }

  /** Starts a read past the edge once the window holds fewer keys than its size. */
  private readAheadIfLow(): void {
    const from = this.edge;
    if (from === undefined || this.complete || this.ahead || this.keys.length >= this.size) return;
    const ahead: ReadAhead = { from, layout: this.layout, journal: [], done: Promise.resolve() };
    this.ahead = ahead;
    ahead.done = this.readAhead(ahead).finally(() => {
      if (this.ahead === ahead) this.ahead = undefined;
    });
  }

  private async readAhead(ahead: ReadAhead): Promise<void> {
    let keys: string[];
    try {
      keys = await this.sub.keys({ limit: this.size, gt: ahead.from }).all();
      // The records are read for the cache only: a key deleted meanwhile, its record with it,
      // fails that read, not the window (merge drops the key).
      await this.onRefill(keys).catch(() => undefined);
    } catch {
      return; // the read failed (the store closing, say): a foreground refill reads instead
    }
    if (ahead.layout === this.layout && this.edge === ahead.from)
      this.merge(ahead, keys, keys.length < this.size);
  }

  /**
   * Adds the keys read past `ahead.from` to the window, with the commits made since the read
   * began replayed onto them in order: each deletes or inserts a key outright, so a commit the
   * read already saw changes nothing when replayed, and one it did not see is applied. The
   * result is the index past the old edge as it is now (up to the new edge, or all of it when
   * the read found the end).
   */
  private merge(ahead: ReadAhead, read: readonly string[], complete: boolean): void {
    const past = new Set(read);
    for (const { deleted, inserted } of ahead.journal) {
      for (const key of deleted) past.delete(key);
      for (const key of inserted) if (key > ahead.from) past.add(key);
    }
    const edge = complete ? undefined : read.at(-1);
    const added = [...past].filter((key) => edge === undefined || key <= edge).sort();
    for (const key of added) this.keys.push(key);
    this.edge = edge ?? this.keys.at(-1) ?? ahead.from;
    this.complete = complete;
    this.version++;
    this.passed = undefined;
  }

  private fromMemory(
    limit: number,
    lte: string | undefined,
    skip: ((pubkey: string) => boolean) | undefined,
    passOver: PassOver | undefined,
  ): string[] | undefined {
    if (this.edge === undefined) return undefined;
    const out: string[] = [];
    // The keys before `front` are all passed over: they add nothing to the answer, whatever
    // `limit` and `lte` (the keys are sorted, so a bound below one of them is below the rest).
    const memo = this.passed;
    const removals = skip && passOver?.removals;
    let front =
      memo !== undefined &&
      memo.over === passOver &&
      memo.removals === removals &&
      memo.version === this.version
        ? memo.count
        : 0;
    const { keys } = this;
    for (let i = front; i < keys.length; i++) {
      const key = keys[i] as string;
      if (out.length === limit || (lte !== undefined && key > lte)) break;
      if (!skip?.(this.pubkeyOf(key))) out.push(key);
      else if (front === i) front = i + 1;
    }
    if (passOver !== undefined && typeof removals === 'number')
      this.passed = { over: passOver, removals, version: this.version, count: front };
    if (out.length === limit || this.complete) return out;
    // Fewer than asked: enough only if nothing beyond the edge could qualify.
    return lte !== undefined && this.edge >= lte ? out : undefined;
  }

  private async refill(limit: number): Promise<void> {
    const seen = this.commitCount();
    // Start at the lowest live key we know of, or past the edge: either skips the tombstones.
    const first = this.keys[0];
    const from =
      first !== undefined
        ? { gte: first }
        : this.edge !== undefined && this.edge !== ''
          ? { gt: this.edge }
          : {};
    const keys = await this.sub.keys({ limit, ...from }).all();
    await this.onRefill(keys);
    if (seen !== this.commitCount()) return;
    this.keys = keys;
    this.layout++;
    this.version++;
    this.pubkeys.clear();
    this.edge = keys.at(-1) ?? this.edge ?? '';
    this.complete = keys.length < limit;
  }

  private pubkeyOf(key: string): string {
    let pubkey = this.pubkeys.get(key);
    if (pubkey === undefined) {
      pubkey = timeIndexPubkey(key);
      this.pubkeys.set(key, pubkey);
    }
    return pubkey;
  }

  /** Binary search: the index of `key`, or where it would go. */
  private position(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] ?? '') < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * `keys` from position `from` on, without the positions `gone`, with `added` (sorted) merged in;
 * each key once.
 */
function rebuilt(
  keys: readonly string[],
  from: number,
  gone: ReadonlySet<number>,
  added: readonly string[],
): string[] {
  const out: string[] = [];
  const push = (key: string) => {
    if (out[out.length - 1] !== key) out.push(key);
  };
  let a = 0;
  for (let i = from; i < keys.length; i++) {
    const key = keys[i] as string;
    for (let next = added[a]; next !== undefined && next < key; next = added[++a]) push(next);
    if (!gone.has(i)) push(key);
  }
  for (let next = added[a]; next !== undefined; next = added[++a]) push(next);
  return out;
}
