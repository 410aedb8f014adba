// What must hold after several servers worked on one database, whatever failed meanwhile
// (issue 15, point 3): read from the tables themselves, from every live server's
// /v1/assignments, and from what the pods were acknowledged (ha-pods.ts's ledger).
import pg from 'pg';
import { z } from 'zod';
import { MetaKey } from '../../src/store/buckets.js';
import { type KeyRecord, keyRecordCodec, podRecordCodec } from '../../src/store/records.js';
import type { Fleet } from './ha-fleet.js';
import type { Hold, Ledger } from './ha-pods.js';
import { runPkm } from './spawn.js';

export interface Tables {
  /** Pod name -> its keys, for pods holding any (pkm_pods). */
  readonly pods: Map<string, string[]>;
  readonly keys: Map<string, KeyRecord>;
  readonly nextKeyIndex: number;
}

/** The tables as they are now, decoded with the store's own codecs. */
export async function readTables(url: string): Promise<Tables> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const pods = new Map<string, string[]>();
    for (const row of (await client.query('SELECT name, record FROM pkm_pods')).rows) {
      const record = podRecordCodec.decode(String(row.record));
      if (record.keys.length > 0) pods.set(String(row.name), [...record.keys]);
    }
    const keys = new Map<string, KeyRecord>();
    for (const row of (await client.query('SELECT record FROM pkm_keys')).rows) {
      const record = keyRecordCodec.decode(String(row.record));
      keys.set(record.pubkey, record);
    }
    const next = await client.query('SELECT value FROM pkm_meta WHERE key = $1', [
      MetaKey.nextKeyIndex,
    ]);
    return { pods, keys, nextKeyIndex: Number(next.rows[0]?.value ?? 0) };
  } finally {
    await client.end();
  }
}

/**
 * Transactions the database rolled back so far (a commit refused as STORE_CONFLICT rolls back):
 * the statistics lag up to a second or so behind, so read it after the servers went quiet.
 */
export async function rollbacks(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query(
      'SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()',
    );
    return Number(res.rows[0]?.xact_rollback ?? 0);
  } finally {
    await client.end();
  }
}

const sorted = (list: readonly string[]) => [...list].sort();

/** Keys listed by two pods at once. */
export function keysInTwoPods(pods: ReadonlyMap<string, readonly string[]>): string[] {
  const holder = new Map<string, string>();
  const problems: string[] = [];
  for (const [pod, keys] of pods)
    for (const key of keys) {
      const other = holder.get(key);
      if (other !== undefined) problems.push(`${key} is in ${other} and in ${pod}`);
      holder.set(key, pod);
    }
  return problems;
}

/**
 * Two pods that surely held one key at the same time (acknowledged to one before the other
 * sent its release), and keys that moved to another pod sooner than --reuse-delay after the
 * release was sent (slashing safety: DESIGN.md "Safety rules").
 */
export function holdProblems(holds: readonly Hold[], reuseDelayMs: number): string[] {
  const problems: string[] = [];
  for (const list of holdsByKey(holds).values()) {
    list.sort((a, b) => a.from - b.from);
    list.forEach((after, j) => {
      for (const before of list.slice(0, j)) {
        if (before.pod === after.pod) continue;
        const end = before.until ?? Number.POSITIVE_INFINITY;
        const key = after.key;
        if (after.from < end)
          problems.push(
            `${key}: held by ${before.pod} until ${end}, acknowledged to ${after.pod} at ${after.from}`,
          );
        else if (after.from < end + reuseDelayMs)
          problems.push(
            `${key}: released by ${before.pod} at ${end}, acknowledged to ${after.pod} ${after.from - end} ms later`,
          );
      }
    });
  }
  return problems;
}

export function holdsByKey(holds: readonly Hold[]): Map<string, Hold[]> {
  const byKey = new Map<string, Hold[]>();
  for (const h of holds) byKey.set(h.key, [...(byKey.get(h.key) ?? []), h]);
  return byKey;
}

/** Keys that went from one pod to another (through the pool), and back to their own pod. */
export function moves(holds: readonly Hold[]): { toAnother: number; reclaimed: number } {
  let toAnother = 0;
  let reclaimed = 0;
  for (const list of holdsByKey(holds).values()) {
    const pods = new Set(list.map((h) => h.pod));
    if (pods.size > 1) toAnother++;
    if (pods.size < list.length) reclaimed++;
  }
  return { toAnother, reclaimed };
}

const Assignments = z.object({ pods: z.record(z.string(), z.array(z.string())) });

/** GET /v1/assignments of a server: pod -> keys (pods holding none are not listed). */
async function assignments(url: string): Promise<Map<string, string[]>> {
  const res = await fetch(`${url}/v1/assignments`, { signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`${url}/v1/assignments answered ${res.status}`);
  return new Map(Object.entries(Assignments.parse(await res.json()).pods));
}

export interface EndReport {
  /** Every problem found; the tests expect none. */
  readonly problems: string[];
  readonly keys: number;
  readonly pods: number;
  readonly derived: number;
}

/**
 * Everything issue 15 asks after the faults: no key in two pods (tables and every live
 * server's view, which agree), each pod holds what it was last acknowledged, every key ever
 * handed out is stored, each derivation path once and none skipped, and the store's own check
 * (DESIGN.md "Key lifecycle") clean.
 */
export async function checkEnd(
  fleet: Fleet,
  url: string,
  ledger: Ledger,
  reuseDelayMs: number,
): Promise<EndReport> {
  const problems: string[] = [...ledger.problems];
  const tables = await readTables(url);
  problems.push(...keysInTwoPods(tables.pods).map((p) => `pkm_pods: ${p}`));
  problems.push(...keysInTwoPods(ledger.settledPods()).map((p) => `acknowledged: ${p}`));
  problems.push(...holdProblems(ledger.holds, reuseDelayMs));

  for (const i of fleet.alive()) {
    const seen = await assignments(fleet.url(i));
    problems.push(...keysInTwoPods(seen).map((p) => `server ${i}'s /v1/assignments: ${p}`));
    for (const pod of new Set([...seen.keys(), ...tables.pods.keys()])) {
      const a = sorted(seen.get(pod) ?? []);
      const b = sorted(tables.pods.get(pod) ?? []);
      if (a.join() !== b.join())
        problems.push(`server ${i} shows ${pod} with [${a}], pkm_pods with [${b}]`);
    }
  }

  for (const [pod, acked] of ledger.settledPods()) {
    const stored = sorted(tables.pods.get(pod) ?? []);
    if (stored.join() !== sorted(acked).join())
      problems.push(`${pod} was last acknowledged [${sorted(acked)}], pkm_pods holds [${stored}]`);
  }
  for (const key of ledger.handedOut.keys())
    if (!tables.keys.has(key)) problems.push(`${key} was handed out and is not in pkm_keys`);

  const paths = new Map<string, string>();
  for (const r of tables.keys.values()) {
    if (r.path === undefined) continue;
    const other = paths.get(r.path);
    if (other !== undefined) problems.push(`${r.path} derived twice: ${other} and ${r.pubkey}`);
    paths.set(r.path, r.pubkey);
  }
  // Indexes are taken in the transaction of their keys: none skipped, none past the next one.
  if (paths.size !== tables.nextKeyIndex)
    problems.push(`${paths.size} derived keys, but the next key index is ${tables.nextKeyIndex}`);

  // `pkm db check` on the database, as an operator runs it beside the servers (one snapshot).
  const check = runPkm(['db', 'check', '--store', url]);
  const exit = await check.exited;
  const report = z
    .object({ problems: z.array(z.string()) })
    .safeParse(JSON.parse(check.stdout.join('\n') || '{}'));
  if (exit !== 0 || !report.success)
    problems.push(
      `pkm db check exited ${exit}: ${check.stdout.join(' ')} ${check.stderr.join(' ')}`,
    );
  else problems.push(...report.data.problems.map((p) => `pkm db check: ${p}`));
  return {
    problems,
    keys: tables.keys.size,
    pods: tables.pods.size,
    derived: paths.size,
  };
}
