// Reads of the pools (free and cooling keys, oldest first) on PostgreSQL: an index range scan of
// at most `limit` rows, whatever the pool's size. With lanes (PgStoreOptions.lanes) a server
// takes its own lane first, then the next lanes in turn, each lane a scan of the lane index
// (pkm_keys_lane), so that servers picking at once seldom pick the same keys. A server whose
// lane runs dry, or whose commit another server's overtook, moves to another lane at random.

import { randomInt } from 'node:crypto';
import type { IndexEntry, PoolIndex, PoolRecords } from '../contract.js';
import { keyRecordCodec } from '../records.js';
import type { Run } from './reads.js';
import { EntryRecordRow, EntryRow, parseRows } from './rows.js';

/** The pools' lanes: a pubkey's last hex digit. */
export const LANES = 16;

/** What a pool read returns: the entries alone, or with their records (one read, not two). */
type Columns = 'since, pubkey' | 'since, pubkey, record';

/** oldest(): $1 the pool, $2 the latest time or null, $3 the limit. */
const oldestSql = (columns: Columns) => `SELECT ${columns} FROM pkm_keys
  WHERE pool = $1 AND ($2::bigint IS NULL OR since <= $2)
  ORDER BY since, pubkey LIMIT $3`;

/** oldest() in one lane: $4 the lane (a hex digit); the lane index serves it. */
const oldestInLaneSql = (columns: Columns) => `SELECT ${columns} FROM pkm_keys
  WHERE pool = $1 AND right(pubkey, 1) = $4 AND ($2::bigint IS NULL OR since <= $2)
  ORDER BY since, pubkey LIMIT $3`;

/**
 * oldest() by lanes, in one round trip: $4 the lanes in the order to take them (this store's
 * own first, then the next ones in turn); each lane an index range scan of at most $3 rows.
 */
const oldestByLanesSql = (columns: Columns) => `SELECT ${columns
  .split(', ')
  .map((c) => `e.${c}`)
  .join(', ')}
  FROM unnest($4::text[]) WITH ORDINALITY AS l(lane, n)
  CROSS JOIN LATERAL (
    SELECT ${columns} FROM pkm_keys
    WHERE pool = $1 AND right(pubkey, 1) = l.lane AND ($2::bigint IS NULL OR since <= $2)
    ORDER BY since, pubkey LIMIT $3) e
  ORDER BY l.n, e.since, e.pubkey LIMIT $3`;

export const OLDEST_SQL = oldestSql('since, pubkey');

export interface PoolRead {
  readonly index: PoolIndex;
  /** Rows to read at most. */
  readonly limit: number;
  /**
   * Rows wanted at least (default: `limit`): a read of more than a request needs (a group's
   * chunk, Transaction) may stop at the end of this store's lane, which then does not count
   * as run dry.
   */
  readonly need?: number;
  readonly atOrBefore?: number | undefined;
  /** This store's lane, when it picks by lanes. */
  readonly lane: string | undefined;
  /**
   * Its lane ran dry: the lane to go on from (this store's lane from now on, PgStore.hopLane);
   * without it, the next lane.
   */
  readonly hop?: () => string;
}

/** Rows of a pool read; `complete`: the pool has no more (none fits past the last one). */
interface Rows {
  readonly rows: readonly unknown[];
  readonly complete: boolean;
}

/** Every lane but `skip`, in turn from `start` on. */
function lanesFrom(start: string, skip: string): string[] {
  const first = Number.parseInt(start, 16);
  return Array.from({ length: LANES }, (_, i) => ((first + i) % LANES).toString(16)).filter(
    (l) => l !== skip,
  );
}

/** A lane other than `lane`, at random. */
export function otherLane(lane: string): string {
  return lanesFrom(lane, lane)[randomInt(LANES - 1)] ?? lane;
}

/** The rows of a pool read, in the order to take them (see the top of this file). */
async function oldestRows(run: Run, read: PoolRead, columns: Columns): Promise<Rows> {
  const { index, limit, atOrBefore, lane } = read;
  if (limit <= 0) return { rows: [], complete: false };
  const params = [index, atOrBefore === undefined ? null : Math.floor(atOrBefore), limit];
  if (lane === undefined) {
    const { rows } = await run('reading a pool', oldestSql(columns), params);
    return { rows, complete: rows.length < limit };
  }
  const own = (await run('reading a pool', oldestInLaneSql(columns), [...params, lane])).rows;
  if (own.length >= limit) return { rows: own, complete: false };
  // Enough for what is needed: the other lanes stay unread (so the pool is not known to end).
  if (own.length >= (read.need ?? limit)) return { rows: own, complete: false };
  // Its own lane ran dry: the other lanes in turn, from a lane picked at random, which becomes
  // its own. Servers whose lanes run dry scatter, where walking on to the next lane would
  // bring one onto the lane of the next server, and keep them there together.
  const start = read.hop?.() ?? lanesFrom(lane, lane)[0] ?? lane;
  const rest = await run('reading a pool', oldestByLanesSql(columns), [
    index,
    params[1],
    limit - own.length,
    lanesFrom(start, lane),
  ]);
  const rows = [...own, ...rest.rows];
  return { rows, complete: rows.length < limit };
}

export async function readOldest(run: Run, read: PoolRead): Promise<IndexEntry[]> {
  const { rows } = await oldestRows(run, read, 'since, pubkey');
  return parseRows(EntryRow, rows, 'pool entry');
}

export async function readOldestRecords(run: Run, read: PoolRead): Promise<PoolRecords> {
  const { rows, complete } = await oldestRows(run, read, 'since, pubkey, record');
  const records = parseRows(EntryRecordRow, rows, 'pool entry').map(
    ({ since, pubkey, record }) => ({ since, pubkey, record: keyRecordCodec.decode(record) }),
  );
  return { records, complete };
}
