// The reads a PostgreSQL store answers, over any way to run a statement: the store's pool
// (pg-store.ts) or one snapshot's connection (snapshot.ts, `pkm db check`). Keyset pages: the
// records stream, never one giant SELECT.
import type pg from 'pg';
import { PkmError } from '../../errors.js';
import { MetaKey } from '../buckets.js';
import type { IndexEntry, PoolIndex } from '../contract.js';
import {
  type Counts,
  countsCodec,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
} from '../records.js';
import { EntryRow, KeyRow, MetaRow, PodRow, parseRows } from './rows.js';

/** Runs one statement (turning a failure into a coded error). */
export type Run = (
  doing: string,
  sql: string,
  params: readonly unknown[],
) => Promise<pg.QueryResult>;

/** Rows per page of pods() and keyRecords(). */
const PAGE = 500;

/** The counters and next key index as stored now. */
export async function readCounters(run: Run): Promise<{ counts: Counts; next: number }> {
  const meta = await run(
    'reading its meta',
    'SELECT key, value FROM pkm_meta WHERE key = ANY($1)',
    [[MetaKey.counts, MetaKey.nextKeyIndex]],
  );
  const values = new Map(parseRows(MetaRow, meta.rows, 'meta').map((r) => [r.key, r.value]));
  const counts = values.get(MetaKey.counts);
  if (counts === undefined) throw new PkmError('STORE_CORRUPT', 'the store has no counters');
  const next = Number(values.get(MetaKey.nextKeyIndex) ?? '0');
  if (!Number.isSafeInteger(next) || next < 0)
    throw new PkmError('STORE_CORRUPT', 'the next key index is not a number');
  return { counts: countsCodec.decode(counts), next };
}

export async function readPod(run: Run, name: string): Promise<PodRecord | undefined> {
  const res = await run('reading a pod', 'SELECT name, record FROM pkm_pods WHERE name = $1', [
    name,
  ]);
  const [row] = parseRows(PodRow, res.rows, 'pod');
  return row && podRecordCodec.decode(row.record);
}

/** The records of those of the pods named that exist, in one read. */
export async function readPodsNamed(
  run: Run,
  names: readonly string[],
): Promise<Map<string, PodRecord>> {
  if (names.length === 0) return new Map();
  const res = await run('reading pods', 'SELECT name, record FROM pkm_pods WHERE name = ANY($1)', [
    [...new Set(names)],
  ]);
  return new Map(
    parseRows(PodRow, res.rows, 'pod').map((row) => [row.name, podRecordCodec.decode(row.record)]),
  );
}

/** Records of keys that must exist; a missing one is STORE_CORRUPT. */
export async function readKeys(run: Run, pubkeys: readonly string[]): Promise<KeyRecord[]> {
  if (pubkeys.length === 0) return [];
  const res = await run(
    'reading keys',
    'SELECT pubkey, record FROM pkm_keys WHERE pubkey = ANY($1)',
    [[...new Set(pubkeys)]],
  );
  const byKey = new Map(parseRows(KeyRow, res.rows, 'key').map((r) => [r.pubkey, r.record]));
  return pubkeys.map((pubkey) => {
    const text = byKey.get(pubkey);
    if (text === undefined)
      throw new PkmError('STORE_CORRUPT', `key ${pubkey} is indexed but has no record`);
    return keyRecordCodec.decode(text);
  });
}

export async function readIndex(run: Run, index: PoolIndex): Promise<IndexEntry[]> {
  const res = await run(
    'reading a pool',
    'SELECT since, pubkey FROM pkm_keys WHERE pool = $1 ORDER BY since, pubkey',
    [index],
  );
  return parseRows(EntryRow, res.rows, 'pool entry');
}

/** Pod records in name order, after `after`: each page an index range scan. */
export async function* readPods(
  run: Run,
  after: string | undefined,
): AsyncGenerator<[string, PodRecord]> {
  let from = after ?? null;
  for (;;) {
    const res = await run(
      'listing pods',
      `SELECT name, record FROM pkm_pods WHERE $1::text IS NULL OR name > $1
       ORDER BY name LIMIT ${PAGE}`,
      [from],
    );
    const rows = parseRows(PodRow, res.rows, 'pod');
    for (const row of rows) yield [row.name, podRecordCodec.decode(row.record)];
    const last = rows.at(-1);
    if (last === undefined || rows.length < PAGE) return;
    from = last.name;
  }
}

/** Every key record, in pubkey order. */
export async function* readKeyRecords(run: Run): AsyncGenerator<KeyRecord> {
  let after: string | null = null;
  for (;;) {
    const res = await run(
      'listing keys',
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
