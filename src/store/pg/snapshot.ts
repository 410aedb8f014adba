// One instant of a PostgreSQL store, read while servers write (issue 15): `pkm db check` and
// `pkm deposits export` read through a READ ONLY transaction at REPEATABLE READ, whose every
// statement sees the same snapshot (PostgreSQL docs, "Transaction Isolation"). The counters and
// the next key index are read in it first, so they agree with the records read after them.
import type pg from 'pg';
import type { IndexEntry, PoolIndex, StoreReads } from '../contract.js';
import type { Counts, KeyRecord, PodRecord } from '../records.js';
import { guarded } from './errors.js';
import {
  type Run,
  readCounters,
  readIndex,
  readKeyRecords,
  readKeys,
  readPod,
  readPods,
} from './reads.js';

class SnapshotView implements StoreReads {
  constructor(
    private readonly run: Run,
    private readonly counts: Counts,
    private readonly next: number,
  ) {}

  /** Nothing to read again: the counters and next index are the snapshot's own. */
  async refresh(): Promise<void> {}

  nextKeyIndex(): number {
    return this.next;
  }

  storedCounts(): Counts {
    return { ...this.counts };
  }

  getPod(name: string): Promise<PodRecord | undefined> {
    return readPod(this.run, name);
  }

  getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    return readKeys(this.run, pubkeys);
  }

  indexEntries(index: PoolIndex): Promise<IndexEntry[]> {
    return readIndex(this.run, index);
  }

  pods(opts: { after?: string } = {}): AsyncGenerator<[string, PodRecord]> {
    return readPods(this.run, opts.after);
  }

  keyRecords(): AsyncGenerator<KeyRecord> {
    return readKeyRecords(this.run);
  }
}

/**
 * Runs `read` on one snapshot of the database, on `client` (checked out of the store's pool):
 * nothing is written, and the transaction ends (rolled back: it wrote nothing) whatever `read`
 * does.
 */
export async function readSnapshot<T>(
  client: pg.PoolClient,
  read: (view: StoreReads) => Promise<T>,
): Promise<T> {
  await guarded('beginning a snapshot', () =>
    client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
  );
  try {
    const run: Run = (doing, sql, params) =>
      guarded(`${doing} (a snapshot)`, () => client.query(sql, [...params]));
    const { counts, next } = await readCounters(run);
    return await read(new SnapshotView(run, counts, next));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}
