// The LevelDB store: reads by key or by short index ranges, and every change as one atomic
// batch across buckets (keys, indexes, pod records and counters move together or not at all).
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import { PkmError } from '../errors.js';
import { Bucket, MetaKey, parseTimeIndexKey, timeIndexKey, timeUpperBound } from './buckets.js';
import {
  type Counts,
  countsCodec,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
  type StoredState,
} from './records.js';
import { openSchema } from './schema.js';
import { hexSecretCodec, type SecretCodec } from './secret-codec.js';

export interface KeyChange {
  readonly before?: KeyRecord;
  readonly after: KeyRecord;
}
export interface PodChange {
  readonly name: string;
  readonly before?: PodRecord;
  /** Absent: the pod record is deleted. */
  readonly after?: PodRecord;
}
export interface Change {
  readonly keys: readonly KeyChange[];
  readonly pods: readonly PodChange[];
}

export interface IndexEntry {
  readonly since: number;
  readonly pubkey: string;
}

function openBucket(db: Level<string, string>, name: string) {
  return db.sublevel<string, string>(name, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
}
type Sub = ReturnType<typeof openBucket>;
type BatchOp =
  | { type: 'put'; sublevel: Sub; key: string; value: string }
  | { type: 'del'; sublevel: Sub; key: string };

export interface StoreOptions {
  readonly secrets?: SecretCodec;
}

export class Store {
  readonly secrets: SecretCodec;
  private readonly keysB: Sub;
  private readonly podsB: Sub;
  private readonly freeB: Sub;
  private readonly coolingB: Sub;
  private readonly metaB: Sub;
  private stored: Counts;

  private constructor(
    private readonly db: Level<string, string>,
    counts: Counts,
    secrets: SecretCodec,
  ) {
    const sub = (name: string): Sub => openBucket(db, name);
    this.keysB = sub(Bucket.keys);
    this.podsB = sub(Bucket.pods);
    this.freeB = sub(Bucket.unallocated);
    this.coolingB = sub(Bucket.cooling);
    this.metaB = sub(Bucket.meta);
    this.stored = counts;
    this.secrets = secrets;
  }

  /** Opens (or creates) the store in `dir`; refuses a locked dir or a newer schema. */
  static async open(dir: string, opts: StoreOptions = {}): Promise<Store> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const db = new Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      throw openError(dir, err);
    }
    try {
      const counts = await openSchema(db);
      return new Store(db, counts, opts.secrets ?? hexSecretCodec);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  /** Counters by stored state (a `cooling` key stays counted as cooling until it moves). */
  storedCounts(): Counts {
    return { ...this.stored };
  }

  async getPod(name: string): Promise<PodRecord | undefined> {
    const text = await this.podsB.get(name);
    return text === undefined ? undefined : podRecordCodec.decode(text);
  }

  async getKey(pubkey: string): Promise<KeyRecord | undefined> {
    const text = await this.keysB.get(pubkey);
    return text === undefined ? undefined : keyRecordCodec.decode(text);
  }

  /** Records of keys that must exist (they are named by an index or a pod record). */
  async getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    if (pubkeys.length === 0) return [];
    const texts = await this.keysB.getMany([...pubkeys]);
    return texts.map((text, i) => {
      if (text === undefined) {
        throw new PkmError('STORE_CORRUPT', `key ${pubkeys[i]} is indexed but has no record`);
      }
      return keyRecordCodec.decode(text);
    });
  }

  /** Up to `limit` free keys, oldest freed first. */
  async oldestFree(limit: number): Promise<IndexEntry[]> {
    if (limit <= 0) return [];
    const keys = await this.freeB.keys({ limit }).all();
    return keys.map(parseTimeIndexKey);
  }

  /** Up to `limit` cooling keys released at or before `cutoff`, oldest first. */
  async oldestCooledBefore(cutoff: number, limit: number): Promise<IndexEntry[]> {
    if (limit <= 0) return [];
    const keys = await this.coolingB.keys({ lte: timeUpperBound(cutoff), limit }).all();
    return keys.map(parseTimeIndexKey);
  }

  /** The earliest-released cooling key, if any. */
  async oldestCooling(): Promise<IndexEntry | undefined> {
    const [key] = await this.coolingB.keys({ limit: 1 }).all();
    return key === undefined ? undefined : parseTimeIndexKey(key);
  }

  /** How many cooling keys were released after `cutoff` (still inside the reuse delay). */
  async countCoolingAfter(cutoff: number): Promise<number> {
    let n = 0;
    for await (const _ of this.coolingB.keys({ gt: timeUpperBound(cutoff) })) n++;
    return n;
  }

  /** Pod records in name order, starting after `after`. */
  async *pods(opts: { after?: string } = {}): AsyncGenerator<[string, PodRecord]> {
    const range = opts.after === undefined ? {} : { gt: opts.after };
    for await (const [name, text] of this.podsB.iterator(range)) {
      yield [name, podRecordCodec.decode(text)];
    }
  }

  /** Every key record, in pubkey order (for checks and exports, not the request path). */
  async *keyRecords(): AsyncGenerator<KeyRecord> {
    for await (const text of this.keysB.values()) yield keyRecordCodec.decode(text);
  }

  /** Every entry of every bucket, raw, in key order: the store's logical content. */
  async rawEntries(): Promise<Array<[string, string]>> {
    return this.db.iterator().all();
  }

  /** Raw index entries, for the invariant check. */
  async indexEntries(bucket: 'unallocated' | 'cooling'): Promise<IndexEntry[]> {
    const sub = bucket === 'unallocated' ? this.freeB : this.coolingB;
    return (await sub.keys().all()).map(parseTimeIndexKey);
  }

  /**
   * Writes a change as one atomic batch. Indexes and counters are derived here from each
   * record's before and after, so callers cannot let them drift. Encoding checks every record
   * before anything is written: an invalid record aborts the whole change.
   */
  async commit(change: Change): Promise<void> {
    const ops: BatchOp[] = [];
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
      }
      if (now) ops.push({ type: 'put', sublevel: now.sublevel, key: now.key, value: after.pubkey });
      if (before) counts[before.state]--;
      counts[after.state]++;
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
    await this.db.batch(ops);
    this.stored = counts;
  }

  async close(): Promise<void> {
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close();
  }

  private indexOf(record: KeyRecord): { sublevel: Sub; key: string } | undefined {
    const byState: Partial<Record<StoredState, Sub>> = { free: this.freeB, cooling: this.coolingB };
    const sublevel = byState[record.state];
    return sublevel && { sublevel, key: timeIndexKey(record.since, record.pubkey) };
  }
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
