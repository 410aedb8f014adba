// One instant of a PostgreSQL store, read while servers write (issue 15): `pkm db check` and
// `pkm deposits export` read through a READ ONLY transaction at REPEATABLE READ, whose every
// statement sees the same snapshot (PostgreSQL docs, "Transaction Isolation"). The counters and
// the next key index are read in it first, so they agree with the records read after them.
import type pg from 'pg';
import { PkmError } from '../../errors.js';
import { MetaKey } from '../buckets.js';
import type { IndexEntry, PoolIndex, StoreReads } from '../contract.js';
import {
  type Counts,
  countsCodec,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
} from '../records.js';
import { guarded } from './errors.js';
import { EntryRow, KeyRow, MetaRow, PodRow, parseRows } from './rows.js';

/** Rows per page: the records stream, never one giant SELECT. */
const PAGE = 500;

class SnapshotView implements StoreReads {
  constructor(
    private readonly client: pg.PoolClient,
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

  async getPod(name: string): Promise<PodRecord | undefined> {
    const res = await this.query('SELECT name, record FROM pkm_pods WHERE name = $1', [name]);
    const [row] = parseRows(PodRow, res.rows, 'pod');
    return row && podRecordCodec.decode(row.record);
  }

  async getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    if (pubkeys.length === 0) return [];
    const res = await this.query('SELECT pubkey, record FROM pkm_keys WHERE pubkey = ANY($1)', [
      [...new Set(pubkeys)],
    ]);
    const byKey = new Map(parseRows(KeyRow, res.rows, 'key').map((r) => [r.pubkey, r.record]));
    return pubkeys.map((pubkey) => {
      const text = byKey.get(pubkey);
      if (text === undefined)
        throw new PkmError('STORE_CORRUPT', `key ${pubkey} is listed but has no record`);
      return keyRecordCodec.decode(text);
    });
  }

  async indexEntries(index: PoolIndex): Promise<IndexEntry[]> {
    const res = await this.query(
      'SELECT since, pubkey FROM pkm_keys WHERE pool = $1 ORDER BY since, pubkey',
      [index],
    );
    return parseRows(EntryRow, res.rows, 'pool entry');
  }

  async *pods(opts: { after?: string } = {}): AsyncGenerator<[string, PodRecord]> {
    let after = opts.after ?? null;
    for (;;) {
      const res = await this.query(
        `SELECT name, record FROM pkm_pods WHERE $1::text IS NULL OR name > $1
         ORDER BY name LIMIT ${PAGE}`,
        [after],
      );
      const rows = parseRows(PodRow, res.rows, 'pod');
      for (const row of rows) yield [row.name, podRecordCodec.decode(row.record)];
      const last = rows.at(-1);
      if (last === undefined || rows.length < PAGE) return;
      after = last.name;
    }
  }

  async *keyRecords(): AsyncGenerator<KeyRecord> {
    let after: string | null = null;
    for (;;) {
      const res = await this.query(
        `SELECT pubkey, record FROM pkm_keys WHERE $1::text IS NULL OR pubkey > $1
         ORDER BY pubkey LIMIT ${PAGE}`,
        [after],
      );
      const rows = parseRows(KeyRow, res.rows, 'key');
      for (const row of rows) yield keyRecordCodec.decode(row.record);
      const last = rows.at(-1);
      if (last === undefined || rows.length < PAGE) return;
      after = last.pubkey;
    }
  }

  private query(sql: string, params: unknown[]) {
    return guarded('reading a snapshot', () => this.client.query(sql, params));
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
    const meta = await guarded('reading a snapshot', () =>
      client.query('SELECT key, value FROM pkm_meta WHERE key = ANY($1)', [
        [MetaKey.counts, MetaKey.nextKeyIndex],
      ]),
    );
    const values = new Map(parseRows(MetaRow, meta.rows, 'meta').map((r) => [r.key, r.value]));
    const counts = values.get(MetaKey.counts);
    if (counts === undefined) throw new PkmError('STORE_CORRUPT', 'the store has no counters');
    const next = Number(values.get(MetaKey.nextKeyIndex) ?? '0');
    if (!Number.isSafeInteger(next) || next < 0)
      throw new PkmError('STORE_CORRUPT', 'the next key index is not a number');
    return await read(new SnapshotView(client, countsCodec.decode(counts), next));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}
