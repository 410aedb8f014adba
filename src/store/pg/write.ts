// commit()'s transaction: every row of a plan written in one PostgreSQL transaction, committed
// with synchronous_commit on, so a change resolves only once it is on the database's disk.
import type pg from 'pg';
import { PkmError } from '../../errors.js';
import { encodeEvent } from '../audit.js';
import { MetaKey } from '../buckets.js';
import { type Counts, countsCodec } from '../records.js';
import { applyDelta, type Plan } from './plan.js';
import { MetaRow, NextSeqRow, parseOne, parseRows } from './rows.js';

export interface Written {
  readonly counts: Counts;
  readonly nextKeyIndex: number;
}

/**
 * Writes `plan` in one transaction on `client` and commits it; resolves with the counters and
 * next key index as committed. On any failure it rolls back (when the connection still can)
 * and rethrows: nothing of the change is written.
 *
 * Isolation: every commit first locks the counters row (SELECT ... FOR UPDATE), and every
 * commit writes it, so commits run one at a time on the database, in a known order, and
 * READ COMMITTED suffices: each one reads the counters, the next key index and the last audit
 * number as the one before left them. The records' before-images come from the caller; on
 * one server its group committer orders them. Several servers (issue 15, point 3) will check
 * those before-images here, under the lock, and retry the whole change on a mismatch: the
 * retry loop goes around the call of this function in PgStore.commit.
 */
export async function writePlan(client: pg.PoolClient, plan: Plan): Promise<Written> {
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
    const counts = applyDelta(countsCodec.decode(stored), plan.delta);
    const storedNext = Number(meta.get(MetaKey.nextKeyIndex) ?? '0');
    const next = plan.nextKeyIndex ?? storedNext;
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
