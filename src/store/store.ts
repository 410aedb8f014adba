// The LevelDB store: reads by key or by short index ranges, and every change as one atomic
// batch across buckets (keys, indexes, pod records and counters move together or not at all).

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import { type Clock, systemClock } from '../clock.js';
import { PkmError } from '../errors.js';
import { type AuditEvent, decodeEvent, encodeEvent, eventKey, numbered } from './audit.js';
import {
  Bucket,
  MetaKey,
  parseTimeIndexKey,
  timeIndexKey,
  timeUpperBound,
  WRITE_BUFFER_BYTES,
} from './buckets.js';
import { RecordCache } from './cache.js';
import type {
  Change,
  IndexEntry,
  Leadership,
  PassOver,
  PoolIndex,
  PoolRecords,
  StoreContract,
} from './contract.js';
import type { KeyRing } from './encryption.js';
import { lockedCodec, openSecrets, requireKeyRing, type SecretsMeta } from './encryption-setup.js';
import { IndexWindow } from './index-window.js';
import {
  type Counts,
  countRecord,
  countsCodec,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
} from './records.js';
import { openSchema } from './schema.js';
import type { SecretCodec } from './secret-codec.js';
import { soleLeadership } from './sole-leader.js';
import { SYNCED } from './sync.js';

// The contract's shapes, where the domain has always imported them from.
export type { Change, IndexEntry, KeyChange, PodChange, PoolIndex } from './contract.js';

function openBucket(db: Level<string, string>, name: string) {
  return db.sublevel<string, string>(name, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
}
type Sub = ReturnType<typeof openBucket>;

/** A change as commit() writes it (batchOf), and what follows once it is written. */
interface Batch {
  readonly ops: BatchOp[];
  readonly indexed: ReadonlyArray<{ sublevel: Sub; key: string; op: 'put' | 'del' }>;
  readonly counts: Counts;
  readonly next: number | undefined;
  /** How many audit events it numbered. */
  readonly events: number;
}
type BatchOp =
  | { type: 'put'; sublevel: Sub; key: string; value: string }
  | { type: 'del'; sublevel: Sub; key: string };

/** Index entries kept in memory per index; refilled from LevelDB when they run out. */
const WINDOW_SIZE = 512;
const POD_CACHE_SIZE = 50_000;
/**
 * Entries a scan (pods(), keyRecords()) reads per call: a sublevel's iterator awaits two layers
 * of promises per next(), about ten microseconds an entry, a quarter of a second to list
 * 25,000 pods (issue 17, point 5); nextv() pays that once per batch.
 */
const SCAN_BATCH = 1000;
/** Names whose UTF-16 order is LevelDB's byte order, as sortedPodNames needs. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const KEY_CACHE_SIZE = 20_000;

export interface StoreOptions {
  /**
   * Gives the KEK; told whether the store has a data key already (a new store may make its
   * KEK, an encrypted one must be given its own). Without it, secrets cannot be read or sealed.
   */
  readonly kek?: (hasDataKey: boolean) => Promise<Buffer>;
  /** More KEKs to try: the new one, to resume an unfinished rotation (kek-rotation.ts). */
  readonly extraKeks?: readonly Buffer[];
  /**
   * For benchmarks only (bench/allocate.ts measures the unsynced baseline with it). Default
   * true: commit() writes each batch with `sync: true`, so a change is durable before it is
   * acknowledged (DESIGN.md, "Store" and "Key lifecycle"). false lets a power loss undo
   * acknowledged changes: `pkm server` and every other command never pass it.
   */
  readonly sync?: boolean;
}

export class Store implements StoreContract {
  readonly secrets: SecretCodec;
  private readonly openToken = randomBytes(16).toString('hex');
  /** One process holds a LevelDB's lock: reads that disagree mean a damaged store. */
  readonly concurrentWriters = false;
  /** LevelDB's lock lets one process open the store: this server. */
  async serversRunning(): Promise<number> {
    return 1;
  }
  /** One server: its own clock (its monotonic clock guards coolings against steps). */
  readonly clock: Clock = systemClock;
  private readonly keysB: Sub;
  private readonly podsB: Sub;
  private readonly freeB: Sub;
  private readonly coolingB: Sub;
  private readonly metaB: Sub;
  private stored: Counts;
  /** The last commit asked for, settled or not: the next one starts after it. */
  private lastCommit: Promise<unknown> = Promise.resolve();
  private nextIndex: number;
  /** The sequence number the next audit event gets. */
  private nextSeq = 0;
  private readonly eventsB: Sub;
  /** The head of each time index, in memory (see index-window.ts). */
  private readonly windows: Map<Sub, IndexWindow>;
  /** Decoded records, written through by commit(); bounded, so evicted ones are read again. */
  private readonly podCache: RecordCache<PodRecord>;
  private readonly keyCache: RecordCache<KeyRecord>;
  /** Meta values by key (absent ones too), as getMeta() read them or commit() wrote them. */
  private readonly metaCache = new RecordCache<{ readonly value: string | undefined }>(256);
  /** Every pod name in the store, so a new pod costs no read. */
  private readonly podNames: Set<string>;
  /** podNames in order, for podsAtOnce (sortedPodNames). */
  private sortedNames: string[] | undefined;
  /** Bumped by every commit, so a read that raced a commit is not cached. */
  private commits = 0;
  /** commit()'s batch options: synced unless a benchmark said otherwise (StoreOptions.sync). */
  private readonly commitOptions: { readonly sync: boolean };

  private constructor(
    private readonly db: Level<string, string>,
    counts: Counts,
    secrets: SecretCodec,
    podNames: Set<string>,
    nextIndex: number,
    sync: boolean,
  ) {
    this.commitOptions = { sync };
    const sub = (name: string): Sub => openBucket(db, name);
    this.keysB = sub(Bucket.keys);
    this.podsB = sub(Bucket.pods);
    this.freeB = sub(Bucket.unallocated);
    this.coolingB = sub(Bucket.cooling);
    this.metaB = sub(Bucket.meta);
    this.eventsB = sub(Bucket.events);
    this.stored = counts;
    this.secrets = secrets;
    this.podNames = podNames;
    this.nextIndex = nextIndex;
    this.podCache = new RecordCache(POD_CACHE_SIZE);
    this.keyCache = new RecordCache(KEY_CACHE_SIZE);
    // A refilled window prefetches its records: the next allocations then read nothing.
    const window = (sub: Sub) =>
      new IndexWindow(
        sub,
        WINDOW_SIZE,
        () => this.commits,
        (keys) => this.prefetch(keys),
      );
    this.windows = new Map([
      [this.freeB, window(this.freeB)],
      [this.coolingB, window(this.coolingB)],
    ]);
  }

  /** Opens (or creates) the store in `dir`; refuses a locked dir or a newer schema. */
  static async open(dir: string, opts: StoreOptions = {}): Promise<Store> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const db = new Level<string, string>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'utf8',
      writeBufferSize: WRITE_BUFFER_BYTES,
    });
    try {
      await db.open();
    } catch (err) {
      throw openError(dir, err);
    }
    try {
      const counts = await openSchema(db);
      const podNames = new Set(await openBucket(db, Bucket.pods).keys().all());
      const next = Number((await openBucket(db, Bucket.meta).get(MetaKey.nextKeyIndex)) ?? '0');
      if (!Number.isSafeInteger(next) || next < 0)
        throw new PkmError('STORE_CORRUPT', 'the next key index is not a number');
      const secrets = opts.kek
        ? await openSecrets(levelSecretsMeta(db), opts.kek, opts.extraKeks)
        : lockedCodec;
      const store = new Store(db, counts, secrets, podNames, next, opts.sync ?? true);
      const [last] = await store.eventsB.keys({ reverse: true, limit: 1 }).all();
      store.nextSeq = last === undefined ? 0 : Number(last) + 1;
      return store;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  /**
   * A meta value, kept once read or written: every allocation reads the genesis root, and a
   * LevelDB read costs tens of microseconds of CPU (issue 17, point 4). Every write of a meta
   * value passes through commit(), which updates the kept one.
   */
  async getMeta(key: string): Promise<string | undefined> {
    const kept = this.metaCache.get(key);
    if (kept) return kept.value;
    const seen = this.commits;
    const value = await this.metaB.get(key);
    this.metaCache.fill(key, { value }, seen);
    return value;
  }

  /** The next EIP-2334 index to derive a key at. */
  nextKeyIndex(): number {
    return this.nextIndex;
  }

  /**
   * Ties the store to its key source. A store that derived keys from one mnemonic refuses
   * another, and refuses to go on without one: every key must stay recoverable from it.
   */
  async bindKeySource(fingerprint: string | undefined): Promise<void> {
    const stored = await this.metaB.get(MetaKey.mnemonicFingerprint);
    if (stored === fingerprint) return;
    if (stored !== undefined && fingerprint === undefined) {
      throw new PkmError(
        'MNEMONIC_MISMATCH',
        'this store derives keys from a mnemonic: pass the same --mnemonic-file',
      );
    }
    if (stored !== undefined) {
      throw new PkmError(
        'MNEMONIC_MISMATCH',
        'this store was created with a different mnemonic (or passphrase): pass the one it was created with',
      );
    }
    if (fingerprint !== undefined)
      await this.commit({ keys: [], pods: [], meta: [[MetaKey.mnemonicFingerprint, fingerprint]] });
  }

  /** Counters by stored state (a `cooling` key stays counted as cooling until it moves). */
  storedCounts(): Counts {
    return { ...this.stored };
  }

  async getPod(name: string): Promise<PodRecord | undefined> {
    if (!this.podNames.has(name)) return undefined;
    const cached = this.podCache.get(name);
    if (cached) return cached;
    const seen = this.commits;
    const text = await this.podsB.get(name);
    if (text === undefined) return undefined;
    const pod = podRecordCodec.decode(text);
    this.podCache.fill(name, pod, seen);
    return pod;
  }

  async getPods(names: readonly string[]): Promise<Map<string, PodRecord>> {
    const found = new Map<string, PodRecord>();
    for (const name of new Set(names)) {
      const pod = await this.getPod(name);
      if (pod) found.set(name, pod);
    }
    return found;
  }

  async getKey(pubkey: string): Promise<KeyRecord | undefined> {
    const cached = this.keyCache.get(pubkey);
    if (cached) return cached;
    const text = await this.keysB.get(pubkey);
    return text === undefined ? undefined : keyRecordCodec.decode(text);
  }

  /**
   * Records of keys that must exist (they are named by an index or a pod record). The answer is
   * built by push onto an array literal: what map and filter return is of one elements kind
   * when V8 inlines them and of another when it does not, and each function that iterated it
   * was deoptimized whenever the other kind came by; allocateIn took 55-75 ms to compile again,
   * inside the benchmark's measured run (issue 17, point 4).
   */
  async getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    // What the cache holds now: a batch written during the read below may change it.
    const cached: Array<KeyRecord | undefined> = [];
    const missing: string[] = [];
    for (const pk of pubkeys) {
      const record = this.keyCache.get(pk);
      cached.push(record);
      if (record === undefined) missing.push(pk);
    }
    const read = new Map<string, KeyRecord>();
    if (missing.length > 0) {
      const seen = this.commits;
      const texts = await this.keysB.getMany(missing);
      texts.forEach((text, i) => {
        const pubkey = missing[i] ?? '';
        if (text === undefined)
          throw new PkmError('STORE_CORRUPT', `key ${pubkey} is indexed but has no record`);
        const record = keyRecordCodec.decode(text);
        read.set(pubkey, record);
        this.keyCache.fill(pubkey, record, seen);
      });
    }
    const found: KeyRecord[] = [];
    pubkeys.forEach((pk, i) => {
      const record = cached[i] ?? read.get(pk);
      if (record !== undefined) found.push(record);
    });
    return found;
  }

  /**
   * Up to `limit` entries of a pool index, oldest first; with `atOrBefore`, only those whose
   * time is at most that (cooling keys released long enough ago).
   */
  async oldest(
    index: PoolIndex,
    limit: number,
    atOrBefore?: number,
    passOver?: PassOver,
  ): Promise<IndexEntry[]> {
    if (limit <= 0) return [];
    const sub = index === 'unallocated' ? this.freeB : this.coolingB;
    const lte = atOrBefore === undefined ? undefined : timeUpperBound(atOrBefore);
    return (await this.window(sub).read(limit, lte, passOver)).map(parseTimeIndexKey);
  }

  async oldestRecords(
    index: PoolIndex,
    limit: number,
    opts: { readonly atOrBefore?: number } = {},
  ): Promise<PoolRecords> {
    const entries = await this.oldest(index, limit, opts.atOrBefore);
    const records = await this.getKeys(entries.map((e) => e.pubkey));
    return {
      records: entries.map((e, i) => {
        const record = records[i];
        if (!record)
          throw new PkmError('STORE_CORRUPT', `key ${e.pubkey} is indexed but has no record`);
        return { ...e, record };
      }),
      complete: entries.length < limit,
    };
  }

  /** How many cooling keys were released after `cutoff` (still inside the reuse delay). */
  async countCoolingAfter(cutoff: number): Promise<number> {
    let n = 0;
    for await (const _ of this.coolingB.keys({ gt: timeUpperBound(cutoff) })) n++;
    return n;
  }

  /**
   * Pod records in name order, starting after `after`. A record in the cache is the one this
   * server wrote or read (write-through), decoded already: only the names are read for those,
   * the others are read and decoded, and fill the cache while it has room. So a second listing
   * of 25,000 pods reads and decodes none of them (issue 17, point 5).
   *
   * When the cache holds every pod, the pods are those of one instant (podsAtOnce). Otherwise
   * (after a start, or past the cache's size) LevelDB is read batch by batch, and each pod is
   * yielded as it is when yielded: a batch's records are looked up at its start, and a caller
   * may take its time between yields (a listing waits for a slow reader), so once a commit has
   * ended since, a pod is looked up again (podNow). There, a key that moves on to a pod later
   * in the order while the listing is read shows under both.
   */
  async *pods(opts: { after?: string } = {}): AsyncGenerator<[string, PodRecord]> {
    const atOnce = this.podsAtOnce(opts.after);
    if (atOnce !== undefined) {
      yield* atOnce;
      return;
    }
    const range = opts.after === undefined ? {} : { gt: opts.after };
    const names = this.podsB.keys(range);
    try {
      for (let batch = await names.nextv(SCAN_BATCH); batch.length > 0; ) {
        const seen = this.commits;
        // One cache lookup per name while nothing commits: a lookup in a map of 25,000 names
        // costs about half a microsecond, a sixth of a listing's time once (issue 17, point 5).
        const cached = batch.map((name) => this.podCache.get(name));
        const missing = batch.filter((_, i) => cached[i] === undefined);
        const texts = missing.length === 0 ? [] : await this.podsB.getMany(missing);
        const read = new Map<string, PodRecord>();
        texts.forEach((text, i) => {
          const name = missing[i];
          if (name === undefined || text === undefined) return; // deleted since the names
          const pod = podRecordCodec.decode(text);
          read.set(name, pod);
          this.podCache.fillIfRoom(name, pod, seen);
        });
        for (const [i, name] of batch.entries()) {
          const then = cached[i] ?? read.get(name);
          const pod = this.commits === seen ? then : await this.podNow(name, then, seen);
          if (pod !== undefined) yield [name, pod];
        }
        batch = await names.nextv(SCAN_BATCH);
      }
    } finally {
      await names.close();
    }
  }

  /** A pod as it is now, `then` being how a read that started at commit count `seen` found it. */
  private async podNow(
    name: string,
    then: PodRecord | undefined,
    seen: number,
  ): Promise<PodRecord | undefined> {
    // Write-through: a cached record is the last one committed.
    const cached = this.podCache.get(name);
    if (cached !== undefined) return cached;
    if (!this.podNames.has(name)) return undefined; // deleted since
    // Evicted from the cache but not written since: as it was read.
    if (then !== undefined && !this.podCache.writtenSince(name, seen)) return then;
    // Read again; a commit that ends during the read may have written it once more.
    const before = this.commits;
    const read = await this.getPod(name);
    return this.commits === before ? read : this.podNow(name, read, before);
  }

  /**
   * Every pod after `after`, as of the last commit, in name order: taken from the cache in one
   * synchronous pass when it holds every pod and no batch is being written. A listing then
   * shows one instant, whatever commits while it is sent (no key under two pods however long
   * its reader takes), and reads nothing from LevelDB (issue 17, point 5). Undefined otherwise.
   */
  private podsAtOnce(after: string | undefined): Array<[string, PodRecord]> | undefined {
    // While a batch is written, reads may have cached some of its records already (cache.ts):
    // only between batches is the cache one instant.
    if (this.commits % 2 === 1) return undefined;
    const names = this.sortedPodNames();
    if (names === undefined) return undefined;
    const out: Array<[string, PodRecord]> = [];
    for (let i = after === undefined ? 0 : firstAfter(names, after); i < names.length; i++) {
      const name = names[i];
      const pod = name === undefined ? undefined : this.podCache.get(name);
      if (name === undefined || pod === undefined) return undefined;
      out.push([name, pod]);
    }
    return out;
  }

  /**
   * A pod name came: kept in podNames, and in sortedNames at its place (a splice rather than a
   * sort of 25,000 names, 20-30 ms that would hold up every request).
   */
  private nameAdded(name: string): void {
    if (this.podNames.has(name)) return;
    this.podNames.add(name);
    const sorted = this.sortedNames;
    if (sorted === undefined) return;
    if (!PRINTABLE_ASCII.test(name)) this.sortedNames = undefined;
    else sorted.splice(firstAfter(sorted, name), 0, name);
  }

  /** A pod name went: out of podNames and sortedNames. */
  private nameRemoved(name: string): void {
    if (!this.podNames.delete(name)) return;
    const sorted = this.sortedNames;
    if (sorted === undefined) return;
    const at = firstAfter(sorted, name) - 1;
    if (sorted[at] === name) sorted.splice(at, 1);
    else this.sortedNames = undefined;
  }

  /**
   * The pods' names in LevelDB's order, sorted once, then kept in step (nameAdded). LevelDB orders
   * keys by their UTF-8 bytes and JavaScript compares UTF-16 code units: the same order for
   * printable ASCII, which every Kubernetes name is (api/names.ts); undefined if one were not.
   */
  private sortedPodNames(): readonly string[] | undefined {
    if (this.sortedNames === undefined) {
      const names = [...this.podNames];
      if (!names.every((name) => PRINTABLE_ASCII.test(name))) return undefined;
      this.sortedNames = names.sort();
    }
    return this.sortedNames;
  }

  /** Every key record, in pubkey order (for checks and exports, not the request path). */
  async *keyRecords(): AsyncGenerator<KeyRecord> {
    const values = this.keysB.values();
    try {
      for (let batch = await values.nextv(SCAN_BATCH); batch.length > 0; ) {
        for (const text of batch) yield keyRecordCodec.decode(text);
        batch = await values.nextv(SCAN_BATCH);
      }
    } finally {
      await values.close();
    }
  }

  /** Every entry of every bucket, raw, in key order: the store's logical content. */
  async rawEntries(): Promise<Array<[string, string]>> {
    return this.db.iterator().all();
  }

  /** The newest audit events of these types, newest first (reads at most `scan` events back). */
  async lastEvents(
    types: ReadonlySet<string>,
    limit: number,
    scan = 10_000,
  ): Promise<AuditEvent[]> {
    const found: AuditEvent[] = [];
    for await (const text of this.eventsB.values({ reverse: true, limit: scan })) {
      const event = decodeEvent(text);
      if (types.has(event.type)) found.push(event);
      if (found.length === limit) break;
    }
    return found;
  }

  /** Audit events from sequence number `since` on, oldest first. */
  async events(since: number, limit: number): Promise<AuditEvent[]> {
    const texts = await this.eventsB.values({ gte: eventKey(Math.max(0, since)), limit }).all();
    return texts.map(decodeEvent);
  }

  /** Raw index entries, for the invariant check. */
  async indexEntries(bucket: PoolIndex): Promise<IndexEntry[]> {
    const sub = bucket === 'unallocated' ? this.freeB : this.coolingB;
    return (await sub.keys().all()).map(parseTimeIndexKey);
  }

  /**
   * Writes a change as one atomic batch. Indexes and counters are derived here from each
   * record's before and after, so callers cannot let them drift. Encoding checks every record
   * before anything is written: an invalid record aborts the whole change.
   */
  commit(change: Change): Promise<void> {
    // One commit at a time: two at once would number their events alike and count from the
    // same counts. GroupCommitter is the one writer in the server; a commit that comes while
    // another is being written (setup code, tools) waits for it rather than racing it.
    const done = this.lastCommit.then(() => this.commitNow(change));
    this.lastCommit = done.catch(() => undefined);
    return done;
  }

  private async commitNow(change: Change): Promise<void> {
    // Three parts, the two around the write synchronous: V8 optimizes (and, when a record of a
    // new shape comes by, re-optimizes) each on its own; as one async function they were one
    // compilation of 90-160 ms, done again after each deoptimization (issue 17, point 4).
    const batch = this.batchOf(change);
    // Bumped on both sides of the write: a read overlapping any part of it is not cached.
    this.commits++;
    try {
      // Synced: the callers acknowledge the change once this resolves (DESIGN.md, "Store").
      await this.write(batch.ops);
    } finally {
      this.commits++;
    }
    this.written(change, batch);
  }

  /** The operations of a change's batch, and what the store keeps in memory once it is written. */
  private batchOf(change: Change): Batch {
    const ops: BatchOp[] = [];
    const indexed: Array<{ sublevel: Sub; key: string; op: 'put' | 'del' }> = [];
    const counts = { ...this.stored };
    for (const { before, after } of change.keys) {
      if (before !== undefined && before.pubkey !== after.pubkey) {
        throw new PkmError('INTERNAL', 'a key change must keep its pubkey');
      }
      ops.push({
        type: 'put',
        sublevel: this.keysB,
        key: after.pubkey,
        value: keyRecordCodec.encode(after),
      });
      const was = before && this.indexOf(before);
      const now = this.indexOf(after);
      if (was && (was.sublevel !== now?.sublevel || was.key !== now.key)) {
        ops.push({ type: 'del', sublevel: was.sublevel, key: was.key });
        indexed.push({ sublevel: was.sublevel, key: was.key, op: 'del' });
      }
      if (now) {
        ops.push({ type: 'put', sublevel: now.sublevel, key: now.key, value: after.pubkey });
        indexed.push({ sublevel: now.sublevel, key: now.key, op: 'put' });
      }
      if (before) countRecord(counts, before, -1);
      countRecord(counts, after, 1);
    }
    for (const { name, before, after } of change.pods) {
      if (after === undefined) ops.push({ type: 'del', sublevel: this.podsB, key: name });
      else
        ops.push({
          type: 'put',
          sublevel: this.podsB,
          key: name,
          value: podRecordCodec.encode(after),
        });
      counts.pods += Number((after?.keys.length ?? 0) > 0) - Number((before?.keys.length ?? 0) > 0);
    }
    ops.push({
      type: 'put',
      sublevel: this.metaB,
      key: MetaKey.counts,
      value: countsCodec.encode(counts),
    });
    const next = change.nextKeyIndex;
    if (next !== undefined) {
      if (!Number.isSafeInteger(next) || next < this.nextIndex) {
        throw new PkmError(
          'INTERNAL',
          `the next key index may only grow (${this.nextIndex} -> ${next})`,
        );
      }
      ops.push({
        type: 'put',
        sublevel: this.metaB,
        key: MetaKey.nextKeyIndex,
        value: String(next),
      });
    }
    for (const [key, value] of change.meta ?? [])
      ops.push(
        value === undefined
          ? { type: 'del', sublevel: this.metaB, key }
          : { type: 'put', sublevel: this.metaB, key, value },
      );
    const events = (change.events ?? []).map((e, i) => numbered(e, this.nextSeq + i));
    for (const e of events)
      ops.push({
        type: 'put',
        sublevel: this.eventsB,
        key: eventKey(e.seq),
        value: encodeEvent(e),
      });
    return { ops, indexed, counts, next, events: events.length };
  }

  /** A change's batch is on disk: the counts, indexes, windows and caches follow it. */
  private written(change: Change, batch: Batch): void {
    const { indexed, counts, next } = batch;
    this.stored = counts;
    this.nextSeq += batch.events;
    if (next !== undefined) this.nextIndex = next;
    for (const [sub, window] of this.windows) {
      const deleted: string[] = [];
      const inserted: string[] = [];
      for (const e of indexed)
        if (e.sublevel === sub) (e.op === 'del' ? deleted : inserted).push(e.key);
      window.apply(deleted, inserted);
    }
    for (const { after } of change.keys) this.keyCache.set(after.pubkey, after);
    for (const { name, after } of change.pods) {
      this.podCache.set(name, after);
      if (after !== undefined) this.nameAdded(name);
      else this.nameRemoved(name);
    }
    const metaWritten: string[] = [MetaKey.counts];
    if (next !== undefined) metaWritten.push(MetaKey.nextKeyIndex);
    for (const [key, value] of change.meta ?? []) {
      metaWritten.push(key);
      this.metaCache.set(key, { value });
    }
    // Kept in memory as this.stored and this.nextIndex; a read of them reads them again.
    this.metaCache.set(MetaKey.counts, undefined);
    this.metaCache.set(MetaKey.nextKeyIndex, undefined);
    // Reads that raced this batch are not cached for the records it wrote (cache.ts).
    this.metaCache.written(metaWritten, this.commits);
    this.keyCache.written(
      change.keys.map((c) => c.after.pubkey),
      this.commits,
    );
    this.podCache.written(
      change.pods.map((p) => p.name),
      this.commits,
    );
  }

  /**
   * One atomic batch, built as a chained batch: classic-level's array form reads each
   * operation's properties through N-API, about 7 us per operation on the event loop against
   * 1 us here (bench/allocate), and a commit carries ten operations per allocation.
   */
  private async write(ops: readonly BatchOp[]): Promise<void> {
    const batch = this.db.batch();
    try {
      // Each key with its bucket's prefix (the bytes a sublevel writes), on the root's batch:
      // with the `sublevel` option, level's batch built and reshaped an options object per
      // operation, 5-10 us each in the server (23 operations an allocation: issue 17, point 4).
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.sublevel.prefix + op.key, op.value);
        else batch.del(op.sublevel.prefix + op.key);
      }
    } catch (err) {
      await batch.close();
      throw err;
    }
    await batch.write(this.commitOptions);
  }

  /** The ring of data keys; only a store opened with its KEK has one. */
  /** Every commit to this LevelDB is this process's own: nothing to read. */
  async refresh(): Promise<void> {}

  leadership(): Leadership {
    return soleLeadership;
  }

  /** New at every open: a restarted server makes its pods re-assert what they run. */
  async bootToken(): Promise<string> {
    return this.openToken;
  }

  keyRing(): KeyRing {
    return requireKeyRing(this.secrets);
  }

  /** Rewrites the on-disk tables, so values overwritten (an old wrapped key) leave the disk. */
  async compact(): Promise<void> {
    // classic-level (Node's level) has compactRange; the union type of `level` does not say so.
    if ('compactRange' in this.db && typeof this.db.compactRange === 'function')
      await (this.db.compactRange as (start: string, end: string) => Promise<void>).call(
        this.db,
        '',
        '\uffff',
      );
  }

  async close(): Promise<void> {
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close();
  }

  private window(sub: Sub): IndexWindow {
    const window = this.windows.get(sub);
    if (!window) throw new PkmError('INTERNAL', 'no window for that index');
    return window;
  }

  /**
   * A refilled window's records, read in one go. A cooling key that moves to another pod also
   * changes its previous holder's record in the same batch (reuse.ts): those records are read
   * now too, so the group does not wait on one LevelDB read per recycled allocation.
   */
  private async prefetch(indexKeys: readonly string[]): Promise<void> {
    const pubkeys: string[] = [];
    for (const key of indexKeys) pubkeys.push(parseTimeIndexKey(key).pubkey);
    const records = await this.getKeys(pubkeys);
    const holders = new Set<string>();
    for (const r of records)
      if (r.state === 'cooling' && r.pod !== undefined && this.podCache.get(r.pod) === undefined)
        holders.add(r.pod);
    if (holders.size === 0) return;
    const names = [...holders].filter((name) => this.podNames.has(name));
    const seen = this.commits;
    const texts = await this.podsB.getMany(names);
    texts.forEach((text, i) => {
      const name = names[i];
      if (name !== undefined && text !== undefined)
        this.podCache.fill(name, podRecordCodec.decode(text), seen);
    });
  }

  private indexOf(record: KeyRecord): { sublevel: Sub; key: string } | undefined {
    const sublevel =
      record.state === 'free' ? this.freeB : record.state === 'cooling' ? this.coolingB : undefined;
    return sublevel && { sublevel, key: timeIndexKey(record.since, record.pubkey) };
  }
}

/** The meta bucket as openSecrets reads and writes it (the dir lock keeps one writer). */
function levelSecretsMeta(db: Level<string, string>): SecretsMeta {
  const meta = openBucket(db, Bucket.meta);
  return {
    get: (key) => meta.get(key),
    async putIfAbsent(key, value) {
      const stored = await meta.get(key);
      if (stored !== undefined) return stored;
      await db.batch([{ type: 'put', sublevel: meta, key, value }], SYNCED);
      return value;
    },
  };
}

function openError(dir: string, err: unknown): PkmError {
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code === 'LEVEL_LOCKED') {
    return new PkmError(
      'STORE_LOCKED',
      `data dir ${dir} is already in use by another process (stop the other pkm server, or pass another --data-dir)`,
      { cause: err },
    );
  }
  const reason =
    err instanceof Error
      ? err.cause instanceof Error
        ? err.cause.message
        : err.message
      : String(err);
  return new PkmError('STORE_OPEN_FAILED', `cannot open the store in ${dir}: ${reason}`, {
    cause: err,
  });
}

/** The index of the first of `sorted` that comes after `name`. */
function firstAfter(sorted: readonly string[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? '') <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
