// commit()'s transaction: every row of a plan written in one PostgreSQL transaction, committed
// with synchronous_commit on, so a change resolves only once it is on the database's disk.
import type pg from 'pg';
import { PkmError } from '../../errors.js';
import { encodeEvent } from '../audit.js';
import { MetaKey } from '../buckets.js';
import { type Counts, countsCodec, keyRecordCodec, podRecordCodec } from '../records.js';
import { LEADER_LOCK } from './leader.js';
import { applyDelta, type BeforeImage, type Plan } from './plan.js';
import { KeyRow, MetaRow, NextSeqRow, PodRow, parseOne, parseRows } from './rows.js';

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
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    // Durable before acknowledged, whatever the server's default (DESIGN.md, "Store").
    await client.query('SET LOCAL synchronous_commit = on');
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
    if (plan.leaderOnly) await checkLeader(client, basis.leaderPid);
    if (plan.nextKeyIndex !== undefined) await checkNotPaused(client, plan, basis.now, now);
    await checkBefores(client, 'keys', plan.keyBefores, now);
    await checkBefores(client, 'pods', plan.podBefores, now);
    await checkMetaBefores(client, plan.metaBefores, now);
    const next = plan.nextKeyIndex ?? storedNext;
    const counts = applyDelta(now.counts, plan.delta);
    if (!Number.isSafeInteger(storedNext) || next < storedNext)
      throw new PkmError('INTERNAL', `the next key index may only grow (${storedNext} -> ${next})`);

    if (plan.keys.length > 0)
      await client.query(
        `INSERT INTO pkm_keys (pubkey, record, pool, since)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (pubkey) DO UPDATE
           SET record = EXCLUDED.record, pool = EXCLUDED.pool, since = EXCLUDED.since`,
        [
          plan.keys.map((k) => k.pubkey),
          plan.keys.map((k) => k.record),
          plan.keys.map((k) => k.pool),
          plan.keys.map((k) => k.since),
        ],
      );
    if (plan.podPuts.length > 0)
      await client.query(
        `INSERT INTO pkm_pods (name, record) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record`,
        [plan.podPuts.map(([n]) => n), plan.podPuts.map(([, r]) => r)],
      );
    if (plan.podDeletes.length > 0)
      await client.query('DELETE FROM pkm_pods WHERE name = ANY($1)', [plan.podDeletes]);

    const metaPuts: Array<readonly [string, string]> = [
      ...plan.metaPuts,
      [MetaKey.counts, countsCodec.encode(counts)],
    ];
    if (plan.nextKeyIndex !== undefined) metaPuts.push([MetaKey.nextKeyIndex, String(next)]);
    await client.query(
      `INSERT INTO pkm_meta (key, value) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [metaPuts.map(([k]) => k), metaPuts.map(([, v]) => v)],
    );
    if (plan.metaDeletes.length > 0)
      await client.query('DELETE FROM pkm_meta WHERE key = ANY($1)', [plan.metaDeletes]);

    if (plan.events.length > 0) {
      // Numbered under the counters lock: no other commit appends in between.
      const last = await client.query('SELECT coalesce(max(seq) + 1, 0) AS next FROM pkm_audit');
      const first = parseOne(NextSeqRow, last.rows, 'audit log end').next;
      const events = plan.events.map((e, i) => ({ ...e, seq: first + i }));
      await client.query(
        `INSERT INTO pkm_audit (seq, type, event)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])`,
        [events.map((e) => e.seq), events.map((e) => e.type), events.map(encodeEvent)],
      );
    }
    await client.query('COMMIT');
    return { counts, nextKeyIndex: next };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

const BEFORE_SQL = {
  keys: 'SELECT pubkey, record FROM pkm_keys WHERE pubkey = ANY($1)',
  pods: 'SELECT name, record FROM pkm_pods WHERE name = ANY($1)',
} as const;

/** Every stored record equals its before-image (absent where the change saw none). */
async function checkBefores(
  client: pg.PoolClient,
  table: 'keys' | 'pods',
  befores: readonly BeforeImage[],
  now: Written,
): Promise<void> {
  if (befores.length === 0) return;
  const res = await client.query(BEFORE_SQL[table], [befores.map(([name]) => name)]);
  const stored = new Map(
    table === 'keys'
      ? parseRows(KeyRow, res.rows, 'key').map((r) => [r.pubkey, r.record] as const)
      : parseRows(PodRow, res.rows, 'pod').map((r) => [r.name, r.record] as const),
  );
  // Compared as the codec writes them: the stored text may be of an older writer's spelling.
  const normal = (text: string | undefined) =>
    text === undefined
      ? undefined
      : table === 'keys'
        ? keyRecordCodec.encode(keyRecordCodec.decode(text))
        : podRecordCodec.encode(podRecordCodec.decode(text));
  for (const [name, before] of befores) {
    if (normal(stored.get(name)) !== before)
      throw new StoreConflict(table === 'keys' ? `key ${name}` : `pod ${name}`, now);
  }
}

/** This server's lock session still holds the leader lock (it may have been lost just now). */
async function checkLeader(client: pg.PoolClient, pid: number | undefined): Promise<void> {
  const res =
    pid === undefined
      ? undefined
      : await client.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1
             AND classid = 0 AND objid = $2 AND objsubid = 1`,
          [pid, LEADER_LOCK],
        );
  if ((res?.rowCount ?? 0) === 0)
    throw new PkmError('NOT_LEADER', 'this server does not hold the leader lock (now)', {
      retryAfter: 2,
    });
}

/**
 * A change that derives (moves the next key index) while another server looks for reported
 * keys among the indexes ahead (MetaKey.derivationPause) could hand out the very index a pod
 * runs: refused, unless it is the searching server's own change (it writes the pause).
 */
async function checkNotPaused(
  client: pg.PoolClient,
  plan: Plan,
  clock: number,
  now: Written,
): Promise<void> {
  const pause = MetaKey.derivationPause;
  if (plan.metaPuts.some(([key]) => key === pause) || plan.metaDeletes.includes(pause)) return;
  const res = await client.query('SELECT key, value FROM pkm_meta WHERE key = $1', [pause]);
  const [row] = parseRows(MetaRow, res.rows, 'meta');
  if (row !== undefined && Number(row.value) > clock)
    throw new StoreConflict('the derivation pause (a search for reported keys)', now);
}

/** Every meta value the change was decided on is still the stored one. */
async function checkMetaBefores(
  client: pg.PoolClient,
  befores: readonly BeforeImage[],
  now: Written,
): Promise<void> {
  if (befores.length === 0) return;
  const res = await client.query('SELECT key, value FROM pkm_meta WHERE key = ANY($1)', [
    befores.map(([key]) => key),
  ]);
  const stored = new Map(parseRows(MetaRow, res.rows, 'meta').map((r) => [r.key, r.value]));
  for (const [key, before] of befores)
    if (stored.get(key) !== before) throw new StoreConflict(`meta ${key}`, now);
}
