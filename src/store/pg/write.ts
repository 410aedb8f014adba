// commit()'s transaction: every row of a plan written in one PostgreSQL transaction, committed
// with synchronous_commit on, so a change resolves only once it is on the database's disk.
import type pg from 'pg';
import { z } from 'zod';
import { PkmError } from '../../errors.js';
import { encodeEvent } from '../audit.js';
import { MetaKey } from '../buckets.js';
import { type Counts, countsCodec, keyRecordCodec, podRecordCodec, totalKeys } from '../records.js';
import { LEADER_LOCK } from './leader.js';
import { applyDelta, type Plan } from './plan.js';
import { PRESENCE_LOCK } from './presence.js';
import { MetaRow, NextSeqRow, parseOne, parseRows } from './rows.js';

export interface Written {
  readonly counts: Counts;
  readonly nextKeyIndex: number;
}

/** What this server based the change on, besides the records' before-images. */
export interface Basis {
  /** The next key index this server last saw (the one a derivation in the change started at). */
  readonly nextKeyIndex: number;
  /** The leader lock session's backend pid, while this server leads. */
  readonly leaderPid: number | undefined;
  /** This server's wall clock (ms), for MetaKey.derivationPause. */
  readonly now: number;
  /**
   * A server beside others (presence.ts, `server`): each commit takes the presence lock shared
   * for its transaction too, so no commit lands while a maintenance command holds it alone,
   * even in the moment after a database restart before the session lock is taken again.
   */
  readonly presence: boolean;
}

/**
 * Another server changed what this change was based on: nothing was written. Carries the
 * counters and next key index as stored now, so the retry starts from them.
 */
export class StoreConflict extends PkmError {
  constructor(
    what: string,
    readonly now: Written,
  ) {
    super('STORE_CONFLICT', `another server changed ${what} meanwhile; nothing was written`, {
      retryAfter: 1,
    });
  }
}

/**
 * Writes `plan` in one transaction on `client` and commits it; resolves with the counters and
 * next key index as committed. On any failure it rolls back (when the connection still can)
 * and rethrows: nothing of the change is written.
 *
 * Isolation, with several servers on one database (issue 15, point 3): every commit first locks
 * the counters row (SELECT ... FOR UPDATE), and every commit writes it, so commits run one at
 * a time on the database, in a known order, and READ COMMITTED suffices: each one reads the
 * counters, the next key index, the last audit number and every record it changes as the one
 * before left them. Under that lock each record's before-image (what the server read and
 * decided on: a key picked free from the pool, a pod found without keys) is compared with the
 * stored record, and the next key index with the one the derivation started at; any
 * difference refuses the whole change (StoreConflict) and the group committer re-reads and
 * decides again, a bounded number of times. So two servers never both hand out one free key
 * or one derivation index: the second finds the first's change. Why this and not SERIALIZABLE:
 * the servers read outside the transaction (their group committers batch many requests into
 * one commit), so the transaction must compare what was read anyway, and with every commit
 * writing the counters row SERIALIZABLE would fail nearly every contended commit instead of
 * queueing it on the lock.
 */
export async function writePlan(client: pg.PoolClient, plan: Plan, basis: Basis): Promise<Written> {
  // Five round trips in all, three of them under the lock: the lock is what every other
  // server's commit waits on. Durable before acknowledged, whatever the server's default
  // (DESIGN.md, "Store"): synchronous_commit is set for this transaction.
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on');
  try {
    const locked = await client.query(
      'SELECT key, value FROM pkm_meta WHERE key = ANY($1) FOR UPDATE',
      [[MetaKey.counts, MetaKey.nextKeyIndex]],
    );
    const meta = new Map(parseRows(MetaRow, locked.rows, 'meta').map((r) => [r.key, r.value]));
    const stored = meta.get(MetaKey.counts);
    if (stored === undefined) throw new PkmError('STORE_CORRUPT', 'the store has no counters');
    const storedNext = Number(meta.get(MetaKey.nextKeyIndex) ?? '0');
    const now = { counts: countsCodec.decode(stored), nextKeyIndex: storedNext };
    if (plan.nextKeyIndex !== undefined && storedNext !== basis.nextKeyIndex)
      throw new StoreConflict('the next key index', now);
    const seen = await look(client, plan, basis);
    checkSeen(plan, basis, seen, now);
    const next = plan.nextKeyIndex ?? storedNext;
    const counts = applyDelta(now.counts, plan.delta);
    // New keys under --max-total-keys: counted on the database's counters, not this server's.
    if (
      plan.maxTotalKeys !== undefined &&
      totalKeys(counts) > plan.maxTotalKeys &&
      totalKeys(counts) > totalKeys(now.counts)
    )
      throw new StoreConflict('the number of keys (--max-total-keys)', now);
    if (!Number.isSafeInteger(storedNext) || next < storedNext)
      throw new PkmError('INTERNAL', `the next key index may only grow (${storedNext} -> ${next})`);
    const metaPuts: Array<readonly [string, string]> = [
      ...plan.metaPuts,
      [MetaKey.counts, countsCodec.encode(counts)],
    ];
    if (plan.nextKeyIndex !== undefined) metaPuts.push([MetaKey.nextKeyIndex, String(next)]);
    // Numbered under the counters lock: no other commit appends in between.
    const events = plan.events.map((e, i) => ({ ...e, seq: seen.nextSeq + i }));
    await client.query(WRITE_SQL, [
      plan.keys.map((k) => k.pubkey),
      plan.keys.map((k) => k.record),
      plan.keys.map((k) => k.pool),
      plan.keys.map((k) => k.since),
      plan.podPuts.map(([n]) => n),
      plan.podPuts.map(([, r]) => r),
      plan.podDeletes,
      metaPuts.map(([k]) => k),
      metaPuts.map(([, v]) => v),
      plan.metaDeletes,
      events.map((e) => e.seq),
      events.map((e) => e.type),
      events.map(encodeEvent),
    ]);
    await client.query('COMMIT');
    return { counts, nextKeyIndex: next };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Every row of a change in one statement: data-modifying WITH clauses all run, on the same
 * snapshot (planChange keeps puts and deletes of one table apart, and each name once).
 */
const WRITE_SQL = `WITH
  keys AS (
    INSERT INTO pkm_keys (pubkey, record, pool, since)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
    ON CONFLICT (pubkey) DO UPDATE
      SET record = EXCLUDED.record, pool = EXCLUDED.pool, since = EXCLUDED.since
    RETURNING 1),
  pod_puts AS (
    INSERT INTO pkm_pods (name, record) SELECT * FROM unnest($5::text[], $6::text[])
    ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record
    RETURNING 1),
  pod_deletes AS (DELETE FROM pkm_pods WHERE name = ANY($7::text[]) RETURNING 1),
  meta_puts AS (
    INSERT INTO pkm_meta (key, value) SELECT * FROM unnest($8::text[], $9::text[])
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
    RETURNING 1),
  meta_deletes AS (DELETE FROM pkm_meta WHERE key = ANY($10::text[]) RETURNING 1),
  events AS (
    INSERT INTO pkm_audit (seq, type, event)
    SELECT * FROM unnest($11::bigint[], $12::text[], $13::text[])
    RETURNING 1)
SELECT 1`;

/** What is stored now of everything the change was based on, read in one statement. */
interface Seen {
  readonly keys: ReadonlyMap<string, string>;
  readonly pods: ReadonlyMap<string, string>;
  readonly meta: ReadonlyMap<string, string>;
  /** This server's lock session holds the leader lock (asked only for a leaderOnly change). */
  readonly leader: boolean;
  /** The number the change's first audit event gets. */
  readonly nextSeq: number;
}

const SeenRow = z.object({
  t: z.enum(['k', 'p', 'm', 'l', 'e', 'x', 'n']),
  name: z.string(),
  value: z.string(),
});

/** Under the lock: the before-images' rows, the meta values, the leader lock, the log's end. */
async function look(client: pg.PoolClient, plan: Plan, basis: Basis): Promise<Seen> {
  const metaKeys = plan.metaBefores.map(([key]) => key);
  // The derivation pause matters to a change that moves the next index (checkSeen).
  if (plan.nextKeyIndex !== undefined) metaKeys.push(MetaKey.derivationPause);
  const res = await client.query(
    `SELECT 'k' AS t, pubkey AS name, record AS value FROM pkm_keys WHERE pubkey = ANY($1)
     UNION ALL SELECT 'p', name, record FROM pkm_pods WHERE name = ANY($2)
     UNION ALL SELECT 'm', key, value FROM pkm_meta WHERE key = ANY($3)
     UNION ALL SELECT 'l', '', count(*)::text FROM pg_locks
       WHERE $4 AND locktype = 'advisory' AND granted AND pid = $5
         AND classid = 0 AND objid = $6 AND objsubid = 1
     UNION ALL SELECT 'e', '', (coalesce(max(seq) + 1, 0))::text FROM pkm_audit WHERE $7
     UNION ALL SELECT 'x', '',
       (CASE WHEN $8 THEN pg_try_advisory_xact_lock_shared($9::bigint) ELSE true END)::text
     UNION ALL SELECT 'n', '', count(DISTINCT pid)::text FROM pg_locks
       WHERE $10 AND locktype = 'advisory' AND granted AND classid = 0 AND objid = $9
         AND objsubid = 1 AND mode = 'ShareLock' AND pid <> pg_backend_pid()
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [
      plan.keyBefores.map(([name]) => name),
      plan.podBefores.map(([name]) => name),
      metaKeys,
      plan.leaderOnly && basis.leaderPid !== undefined,
      basis.leaderPid ?? 0,
      LEADER_LOCK,
      plan.events.length > 0,
      basis.presence,
      PRESENCE_LOCK,
      plan.alone,
    ],
  );
  const keys = new Map<string, string>();
  const pods = new Map<string, string>();
  const meta = new Map<string, string>();
  let leader = false;
  let alone = false;
  let servers = 0;
  let nextSeq = 0;
  for (const row of parseRows(SeenRow, res.rows, 'before-image')) {
    if (row.t === 'k') keys.set(row.name, row.value);
    else if (row.t === 'p') pods.set(row.name, row.value);
    else if (row.t === 'm') meta.set(row.name, row.value);
    else if (row.t === 'l') leader = Number(row.value) > 0;
    else if (row.t === 'x') alone = row.value !== 'true';
    else if (row.t === 'n') servers = Number(row.value);
    else nextSeq = parseOne(NextSeqRow, [{ next: row.value }], 'audit log end').next;
  }
  if (alone)
    throw new PkmError(
      'STORE_LOCKED',
      'a maintenance command (pkm db rotate-kek, pkm keys import or pkm db copy) is running on this database: nothing was written',
      { retryAfter: 30 },
    );
  // This server's own presence session is one holder; any other is another server.
  if (plan.alone && servers > (basis.presence ? 1 : 0))
    throw new PkmError(
      'STORE_LOCKED',
      `${servers - (basis.presence ? 1 : 0)} other pkm server(s) have this database open: a KEK rotation runs only where one server is alone (nothing was written; it resumes when asked again)`,
    );
  return { keys, pods, meta, leader, nextSeq };
}

/**
 * The change applies only to what it was based on: each record as its before-image (absent
 * where it saw none), each meta value as it read it; a derivation not while another server's
 * search pauses derivation; a leaderOnly change only while this server holds the lock.
 */
function checkSeen(plan: Plan, basis: Basis, seen: Seen, now: Written): void {
  if (plan.leaderOnly && !seen.leader)
    throw new PkmError('NOT_LEADER', 'this server does not hold the leader lock (now)', {
      retryAfter: 2,
    });
  if (plan.nextKeyIndex !== undefined) {
    const pause = MetaKey.derivationPause;
    const own = plan.metaPuts.some(([key]) => key === pause) || plan.metaDeletes.includes(pause);
    // Unless it is the searching server's own change (it writes the pause).
    if (!own && Number(seen.meta.get(pause) ?? 0) > basis.now)
      throw new StoreConflict('the derivation pause (a search for reported keys)', now);
  }
  // Compared in one spelling (the codec's canonical): the stored text may be of another writer's.
  for (const [name, before] of plan.keyBefores) {
    const text = seen.keys.get(name);
    const stored =
      text === undefined ? undefined : keyRecordCodec.canonical(keyRecordCodec.decode(text));
    if (stored !== before) throw new StoreConflict(`key ${name}`, now);
  }
  for (const [name, before] of plan.podBefores) {
    const text = seen.pods.get(name);
    const stored =
      text === undefined ? undefined : podRecordCodec.canonical(podRecordCodec.decode(text));
    if (stored !== before) throw new StoreConflict(`pod ${name}`, now);
  }
  for (const [key, before] of plan.metaBefores)
    if (seen.meta.get(key) !== before) throw new StoreConflict(`meta ${key}`, now);
}
