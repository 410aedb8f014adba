// A transaction over the store: reads see the committed state plus what earlier requests of
// the same group staged; the group's changes are then written as one atomic batch. Each request
// runs in an operation of its own (begin, then keep or undo): one that throws after staging
// leaves nothing of its own in the batch.
import { PkmError } from '../errors.js';
import type { NewAuditEvent } from '../store/audit.js';
import type {
  Change,
  IndexEntry,
  KeyChange,
  PassOver,
  PodChange,
  PoolIndex,
  PoolRecord,
  StoreContract,
} from '../store/contract.js';
import { type Counts, countRecord, type KeyRecord, type PodRecord } from '../store/records.js';
import { podChange } from './transitions.js';

function older(x: IndexEntry, y: IndexEntry): number {
  return x.since - y.since || (x.pubkey < y.pubkey ? -1 : x.pubkey > y.pubkey ? 1 : 0);
}

/**
 * Entries in the store's order (oldest first, or by lanes: PgStoreOptions.lanes) merged with
 * entries sorted oldest first, keeping the store's order among its own.
 */
function mergeOlder(stored: readonly IndexEntry[], sorted: readonly IndexEntry[]): IndexEntry[] {
  const out: IndexEntry[] = [];
  let j = 0;
  for (const e of stored) {
    for (let next = sorted[j]; next !== undefined && older(next, e) < 0; next = sorted[++j])
      out.push(next);
    out.push(e);
  }
  return [...out, ...sorted.slice(j)];
}

/** Pool entries read per round trip at first, on a store other servers write. */
const POOL_CHUNK = 64;
/** Past this, a pool read reads just what the request needs (see poolRead()). */
const MAX_POOL_CHUNK = 1024;

/** The oldest entries of a pool as read, in the store's order; `complete`: all of it. */
interface PoolChunk {
  readonly entries: readonly IndexEntry[];
  readonly complete: boolean;
}

/**
 * The staged keys, counting those that leave (an operation undone): a pool read passes over
 * them, and while none left, the store may start past those it passed over before
 * (PassOver.removals).
 */
class StagedKeys extends Map<string, KeyChange> implements PassOver {
  removals = 0;

  override delete(pubkey: string): boolean {
    const had = super.delete(pubkey);
    if (had) this.removals++;
    return had;
  }

  override clear(): void {
    this.removals += this.size;
    super.clear();
  }
}

export class Transaction {
  /** By pubkey: the record as committed (before) and as staged now (after). */
  private readonly keys = new StagedKeys();
  /**
   * The staged records (of `keys`) in a pool's state, free or cooling: they join its index.
   * Kept as keys change, so a pool read need not look at every key the group staged.
   */
  private readonly pooled = new Map<string, KeyRecord>();
  private readonly pods = new Map<string, PodChange>();
  private stagedNextIndex: number | undefined;
  /** The store's next index as this transaction first read it (see nextKeyIndex()). */
  private indexBasis: number | undefined;
  /** Some staged change may be written only while this server leads (Change.leaderOnly). */
  private leaderOnly = false;
  /** The smallest bound on the keys that exist any staged change made keys under. */
  private maxTotal: number | undefined;
  /** Some staged change may be written only with no other server on the store. */
  private alone = false;
  private readonly events: NewAuditEvent[] = [];
  /**
   * On a store other servers write (concurrentWriters), the committed state this transaction
   * read, kept for the rest of its group: one read serves every request of it, where each
   * read is a round trip to the database. Safe because such a store's commit compares every
   * record it changes with the one read (StoreContract, "before-images"): a read another
   * server's commit overtook fails the commit (STORE_CONFLICT), and the group runs again in a
   * new transaction, on fresh reads. The first read of a record wins, so all requests of a
   * group decide on one view of it. A store with one writer keeps caches of its own.
   */
  private readonly podReads = new Map<string, PodRecord | undefined>();
  private readonly keyReads = new Map<string, KeyRecord>();
  private readonly poolReads = new Map<PoolIndex, PoolChunk>();
  private readonly meta = new Map<string, string | undefined>();
  /** Meta values the staged changes were decided on (the first one staged per key counts). */
  private readonly metaBefore = new Map<string, string | undefined>();
  /** The state before the current operation staged anything, to undo it. */
  private undo:
    | {
        keys: Map<string, KeyChange | undefined>;
        pods: Map<string, PodChange | undefined>;
        meta: Map<string, { had: boolean; value: string | undefined }>;
        metaBefore: string[];
        nextIndex: number | undefined;
        leaderOnly: boolean;
        maxTotal: number | undefined;
        alone: boolean;
        events: number;
      }
    | undefined;

  constructor(private readonly store: StoreContract) {}

  /** Keeps `pooled` in step with a key's staged record. */
  private trackPooled(pubkey: string): void {
    const after = this.keys.get(pubkey)?.after;
    if (after && (after.state === 'free' || after.state === 'cooling'))
      this.pooled.set(pubkey, after);
    else this.pooled.delete(pubkey);
  }

  /** Starts an operation: what it stages can be undone as a whole. */
  begin(): void {
    this.undo = {
      keys: new Map(),
      pods: new Map(),
      meta: new Map(),
      metaBefore: [],
      nextIndex: this.stagedNextIndex,
      leaderOnly: this.leaderOnly,
      maxTotal: this.maxTotal,
      alone: this.alone,
      events: this.events.length,
    };
  }

  /** Keeps what the current operation staged. */
  keep(): void {
    this.undo = undefined;
  }

  /** Takes back everything the current operation staged. */
  rollback(): void {
    const undo = this.undo;
    if (!undo) return;
    for (const [pk, prior] of undo.keys) {
      if (prior) this.keys.set(pk, prior);
      else this.keys.delete(pk);
      this.trackPooled(pk);
    }
    for (const [name, prior] of undo.pods)
      if (prior) this.pods.set(name, prior);
      else this.pods.delete(name);
    for (const [key, { had, value }] of undo.meta)
      if (had) this.meta.set(key, value);
      else this.meta.delete(key);
    for (const key of undo.metaBefore) this.metaBefore.delete(key);
    this.stagedNextIndex = undo.nextIndex;
    this.leaderOnly = undo.leaderOnly;
    this.maxTotal = undo.maxTotal;
    this.alone = undo.alone;
    this.events.length = undo.events;
    this.undo = undefined;
  }

  /**
   * Two reads disagree (an index entry and its record): on a store other servers write, one
   * read saw a commit the other did not, and the group runs again (STORE_CONFLICT); on a store
   * with one writer the store is damaged (STORE_CORRUPT).
   */
  inconsistent(message: string): PkmError {
    return this.store.concurrentWriters
      ? new PkmError('STORE_CONFLICT', `${message} (another server changed it meanwhile)`, {
          retryAfter: 1,
        })
      : new PkmError('STORE_CORRUPT', message);
  }

  /** Other servers write this store too (StoreContract.concurrentWriters). */
  get shared(): boolean {
    return this.store.concurrentWriters;
  }

  /** Something staged may be written only while this server leads. */
  get needsLeader(): boolean {
    return this.leaderOnly;
  }

  get isEmpty(): boolean {
    return (
      this.keys.size === 0 &&
      this.pods.size === 0 &&
      this.meta.size === 0 &&
      this.metaBefore.size === 0 &&
      this.stagedNextIndex === undefined &&
      this.events.length === 0
    );
  }

  /**
   * The next derivation index, after the indexes earlier requests of the group used. The
   * store's own is read once per transaction: on PostgreSQL a refresh() may move it while the
   * group runs, and the group's derivations must all start from the index its commit is
   * checked against (Change.keyIndexBasis).
   */
  nextKeyIndex(): number {
    this.indexBasis ??= this.store.nextKeyIndex();
    return this.stagedNextIndex ?? this.indexBasis;
  }

  async getMeta(key: string): Promise<string | undefined> {
    return this.meta.has(key) ? this.meta.get(key) : this.store.getMeta(key);
  }

  async getPod(name: string): Promise<PodRecord | undefined> {
    const staged = this.pods.get(name);
    if (staged) return staged.after;
    if (!this.shared) return this.store.getPod(name);
    if (this.podReads.has(name)) return this.podReads.get(name);
    const pod = await this.store.getPod(name);
    if (!this.podReads.has(name)) this.podReads.set(name, pod);
    return this.podReads.get(name);
  }

  /**
   * Reads the pods a group's requests will ask for in one read, on a store other servers
   * write (see podReads); a no-op on others.
   */
  async prefetchPods(names: readonly string[]): Promise<void> {
    if (!this.shared) return;
    const missing = names.filter((n) => !this.pods.has(n) && !this.podReads.has(n));
    if (missing.length === 0) return;
    const found = await this.store.getPods(missing);
    for (const name of missing)
      if (!this.podReads.has(name)) this.podReads.set(name, found.get(name));
  }

  /** A key's record as staged or stored; undefined when there is no such key. */
  async getKey(pubkey: string): Promise<KeyRecord | undefined> {
    const staged = this.keys.get(pubkey);
    if (staged) return staged.after;
    if (!this.shared) return this.store.getKey(pubkey);
    const kept = this.keyReads.get(pubkey);
    if (kept) return kept;
    // A key read absent is not kept: another server may add it before a later read names it
    // (a pod's record, a pool), and the two reads would disagree unseen.
    const read = await this.store.getKey(pubkey);
    if (read) this.remember([read]);
    return this.keyReads.get(pubkey) ?? read;
  }

  /** Built by push onto a literal, as Store.getKeys says why. */
  async getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    const missing: string[] = [];
    for (const pk of pubkeys) if (!this.keys.has(pk) && !this.keyReads.has(pk)) missing.push(pk);
    const read = await this.store.getKeys(missing);
    const byKey = new Map<string, KeyRecord>();
    for (const r of read) byKey.set(r.pubkey, r);
    if (this.shared) this.remember(read);
    const found: KeyRecord[] = [];
    for (const pk of pubkeys) {
      const record = this.keys.get(pk)?.after ?? this.keyReads.get(pk) ?? byKey.get(pk);
      if (record !== undefined) found.push(record);
    }
    return found;
  }

  /** Up to `limit` keys of an index, oldest first, released at or before `atOrBefore`. */
  async oldest(index: PoolIndex, limit: number, atOrBefore?: number): Promise<IndexEntry[]> {
    if (limit <= 0) return [];
    // Staged keys left or joined the index in this group: the committed answer passes over
    // them (the store reads past them), and those whose staged state belongs to the index are
    // added. The keys staged in the index's state are kept apart (pooled): a group stages
    // hundreds of keys, and each of its requests reads the pool.
    const staged = this.keys;
    const committed = this.shared
      ? (await this.poolRead(index, limit, atOrBefore)).filter((e) => !staged.has(e.pubkey))
      : await this.store.oldest(index, limit, atOrBefore, staged);
    const state = index === 'unallocated' ? 'free' : 'cooling';
    const joined: IndexEntry[] = [];
    for (const after of this.pooled.values())
      if (after.state === state && (atOrBefore === undefined || after.since <= atOrBefore))
        joined.push({ since: after.since, pubkey: after.pubkey });
    return mergeOlder(committed, joined.sort(older)).slice(0, limit);
  }

  /**
   * Committed entries of a pool at or before `atOrBefore`, in the store's order, enough that
   * the first `limit` not staged in this transaction are the ones a read now would give. Read
   * in chunks kept for the group (see podReads), each entry with its record: the chunk holds
   * the first entries of the store's order, and those that fit `atOrBefore` keep their order,
   * so while enough of them are left they are exactly the answer. A pool mostly of keys that
   * do not fit (cooling keys inside their reuse delay) is read for just this request instead.
   */
  private async poolRead(
    index: PoolIndex,
    limit: number,
    atOrBefore: number | undefined,
  ): Promise<IndexEntry[]> {
    const fits = (e: IndexEntry) => atOrBefore === undefined || e.since <= atOrBefore;
    for (let chunk = this.poolReads.get(index), read = 0; ; ) {
      if (chunk) {
        const entries = chunk.entries.filter(fits);
        const left = entries.filter((e) => !this.keys.has(e.pubkey)).length;
        if (chunk.complete || left >= limit) return entries;
      }
      // What this request needs at least, over-reading by the keys staged (they may be in it).
      const need = limit + this.keys.size;
      const size = Math.max(POOL_CHUNK, need, 2 * (chunk?.entries.length ?? 0));
      // Past the largest chunk, or a read that brought nothing new: just what is needed, exact.
      if (size > MAX_POOL_CHUNK || (chunk && chunk.entries.length <= read)) {
        const exact = await this.store.oldestRecords(index, need, at(atOrBefore));
        this.remember(exact.records.map((r) => r.record));
        return exact.records.map(entryOf);
      }
      read = chunk?.entries.length ?? 0;
      // `need` counts rows whatever their time: only where all rows fit may a read of this
      // store's own lane stop at it.
      const got = await this.store.oldestRecords(
        index,
        size,
        atOrBefore === undefined ? { need } : {},
      );
      this.remember(got.records.map((r) => r.record));
      chunk = { entries: got.records.map(entryOf), complete: got.complete };
      this.poolReads.set(index, chunk);
    }
  }

  /**
   * Keeps records read from a shared store (the first read of each wins: see podReads). A pod
   * a record names is no longer taken as absent: it may have been added since it was read so,
   * and the next read of it reads it again.
   */
  private remember(records: readonly KeyRecord[]): void {
    for (const r of records) {
      if (!this.keyReads.has(r.pubkey)) this.keyReads.set(r.pubkey, r);
      if (r.pod !== undefined && this.podReads.has(r.pod) && !this.podReads.get(r.pod))
        this.podReads.delete(r.pod);
    }
  }

  /** The stored counters as they will be once this transaction commits. */
  counts(): Counts {
    const c = this.store.storedCounts();
    for (const { before, after } of this.keys.values()) {
      if (before) countRecord(c, before, -1);
      countRecord(c, after, 1);
    }
    for (const { before, after } of this.pods.values()) {
      c.pods += Number((after?.keys.length ?? 0) > 0) - Number((before?.keys.length ?? 0) > 0);
    }
    return c;
  }

  /** Adds one request's changes; a key or pod changed twice keeps its committed `before`. */
  stage(change: Change): void {
    const undo = this.undo;
    if (change.nextKeyIndex !== undefined) {
      if (change.nextKeyIndex < this.nextKeyIndex())
        throw new PkmError('INTERNAL', 'the next key index may only grow');
      this.stagedNextIndex = change.nextKeyIndex;
    }
    if (change.leaderOnly) this.leaderOnly = true;
    if (change.alone) this.alone = true;
    if (change.maxTotalKeys !== undefined)
      this.maxTotal = Math.min(this.maxTotal ?? Infinity, change.maxTotalKeys);
    for (const [key, value] of change.metaBefore ?? []) {
      if (this.metaBefore.has(key)) continue;
      this.metaBefore.set(key, value);
      undo?.metaBefore.push(key);
    }
    this.events.push(...(change.events ?? []));
    for (const [key, value] of change.meta ?? []) {
      if (undo && !undo.meta.has(key))
        undo.meta.set(key, { had: this.meta.has(key), value: this.meta.get(key) });
      this.meta.set(key, value);
    }
    for (const c of change.keys) {
      if (undo && !undo.keys.has(c.after.pubkey))
        undo.keys.set(c.after.pubkey, this.keys.get(c.after.pubkey));
      const prior = this.keys.get(c.after.pubkey);
      const before = prior ? prior.before : c.before;
      this.keys.set(c.after.pubkey, before ? { before, after: c.after } : { after: c.after });
      this.trackPooled(c.after.pubkey);
    }
    for (const c of change.pods) {
      if (undo && !undo.pods.has(c.name)) undo.pods.set(c.name, this.pods.get(c.name));
      const prior = this.pods.get(c.name);
      const before = prior ? prior.before : c.before;
      this.pods.set(c.name, podChange(c.name, before, c.after));
    }
  }

  change(): Change {
    const change = {
      keys: [...this.keys.values()],
      pods: [...this.pods.values()],
      events: this.events,
      meta: [...this.meta],
      ...(this.leaderOnly ? { leaderOnly: true } : {}),
      ...(this.maxTotal === undefined ? {} : { maxTotalKeys: this.maxTotal }),
      ...(this.alone ? { alone: true } : {}),
      ...(this.metaBefore.size > 0 ? { metaBefore: [...this.metaBefore] } : {}),
    };
    return this.stagedNextIndex === undefined
      ? change
      : {
          ...change,
          nextKeyIndex: this.stagedNextIndex,
          keyIndexBasis: this.indexBasis ?? this.store.nextKeyIndex(),
        };
  }
}

function at(atOrBefore: number | undefined): { atOrBefore?: number } {
  return atOrBefore === undefined ? {} : { atOrBefore };
}

function entryOf({ since, pubkey }: PoolRecord): IndexEntry {
  return { since, pubkey };
}
