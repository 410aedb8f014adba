// Schema version check and migrations, run once when the store opens.
import type { Level } from 'level';
import { z } from 'zod';
import { PkmError } from '../errors.js';
import { Bucket, MetaKey, SCHEMA_VERSION } from './buckets.js';
import { type Counts, countsCodec, ZERO_COUNTS } from './records.js';
import { SYNCED } from './sync.js';

/**
 * Migrations from version v to v+1, by v. Each writes its changes and the new version in one
 * synced batch, so a crash (or a power loss) leaves the store at either version, never between.
 */
const MIGRATIONS: Record<number, (db: Level<string, string>) => Promise<void>> = {
  // 2: deposits. Key records may carry deposit data and two new states; the counters gain them.
  1: (db) => newCounters(db, 2),
  // 3: the conflict state (heartbeats); the counters gain it.
  2: (db) => newCounters(db, 3),
  // 4: fences and reported keys. The counters gain `reported` and `fenced`; cooling keys of
  // older stores carry no `stop`, which reads as unconfirmed (never reclaimed at once).
  3: (db) => newCounters(db, 4),
  // 5: pods list the keys reported by them, which count toward --max-keys-per-pod.
  4: (db) => reportedLists(db, 5),
  // 6: key records may carry `heldUntil` (a claim's hold on a shared store); nothing to change.
  5: (db) => versionOnly(db, 6),
  // 7: key records may carry `leaving` and `settings`, key histories and the audit log the
  // events of live moves (issue 16); nothing to change, but an older pkm must not read them.
  6: (db) => versionOnly(db, 7),
};

/** A version whose records only gained optional fields: the version alone moves. */
async function versionOnly(db: Level<string, string>, version: number): Promise<void> {
  const meta = db.sublevel<string, string>(Bucket.meta, { valueEncoding: 'utf8' });
  await db.batch(
    [{ type: 'put', sublevel: meta, key: MetaKey.schemaVersion, value: String(version) }],
    SYNCED,
  );
}

/** The fields of an older key record a migration reads (the rest is kept as it is). */
const OldKey = z.object({ pubkey: z.string(), state: z.string(), pod: z.string().optional() });
const OldCounts = z.record(z.string(), z.number());
const OldPod = z.object({ keys: z.array(z.string()), cooling: z.array(z.string()) }).passthrough();

/** Each pod record gains the list of keys in state `reported` that name it, in one batch. */
async function reportedLists(db: Level<string, string>, version: number): Promise<void> {
  const keys = db.sublevel<string, string>(Bucket.keys, { valueEncoding: 'utf8' });
  const pods = db.sublevel<string, string>(Bucket.pods, { valueEncoding: 'utf8' });
  const meta = db.sublevel<string, string>(Bucket.meta, { valueEncoding: 'utf8' });
  const byPod = new Map<string, string[]>();
  for await (const text of keys.values()) {
    const r = OldKey.parse(JSON.parse(text));
    if (r.state !== 'reported' || r.pod === undefined) continue;
    byPod.set(r.pod, [...(byPod.get(r.pod) ?? []), r.pubkey]);
  }
  const ops: Array<{ type: 'put'; sublevel: typeof meta; key: string; value: string }> = [];
  for (const [name, reported] of byPod) {
    const text = await pods.get(name);
    const before =
      text === undefined ? { keys: [], cooling: [], since: 0 } : OldPod.parse(JSON.parse(text));
    ops.push({
      type: 'put',
      sublevel: pods,
      key: name,
      value: JSON.stringify({ ...before, reported: reported.sort() }),
    });
  }
  ops.push({ type: 'put', sublevel: meta, key: MetaKey.schemaVersion, value: String(version) });
  await db.batch(ops, SYNCED);
}

/** The counters gain the states a version added (at zero), with the new version, in one batch. */
async function newCounters(db: Level<string, string>, version: number): Promise<void> {
  const meta = db.sublevel<string, string>(Bucket.meta, { valueEncoding: 'utf8' });
  const old = OldCounts.parse(JSON.parse((await meta.get(MetaKey.counts)) ?? '{}'));
  const counts = countsCodec.encode({ ...ZERO_COUNTS, ...old });
  await db.batch(
    [
      { type: 'put', sublevel: meta, key: MetaKey.counts, value: counts },
      { type: 'put', sublevel: meta, key: MetaKey.schemaVersion, value: String(version) },
    ],
    SYNCED,
  );
}

/** Checks (or writes, for a new store) the schema version; returns the stored counters. */
export async function openSchema(db: Level<string, string>): Promise<Counts> {
  const meta = db.sublevel<string, string>(Bucket.meta, { valueEncoding: 'utf8' });
  let text = await meta.get(MetaKey.schemaVersion);
  if (text === undefined) {
    const [anyKey] = await db.keys({ limit: 1 }).all();
    if (anyKey !== undefined) {
      throw new PkmError(
        'STORE_CORRUPT',
        'the data dir holds data but no schema version: is it a pkm store?',
      );
    }
    const counts = countsCodec.encode(ZERO_COUNTS);
    await db.batch(
      [
        { type: 'put', sublevel: meta, key: MetaKey.schemaVersion, value: String(SCHEMA_VERSION) },
        { type: 'put', sublevel: meta, key: MetaKey.counts, value: counts },
      ],
      SYNCED,
    );
    text = String(SCHEMA_VERSION);
  }
  let version = Number(text);
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new PkmError('STORE_CORRUPT', `the store's schema version "${text}" is not a version`);
  }
  if (version > SCHEMA_VERSION) {
    throw new PkmError(
      'SCHEMA_TOO_NEW',
      `the store has schema version ${version}, newer than this pkm understands (${SCHEMA_VERSION}): run a newer pkm`,
    );
  }
  while (version < SCHEMA_VERSION) {
    const migrate = MIGRATIONS[version];
    if (!migrate)
      throw new PkmError('STORE_CORRUPT', `no migration from schema version ${version}`);
    await migrate(db);
    version++;
  }
  const counts = await meta.get(MetaKey.counts);
  if (counts === undefined) throw new PkmError('STORE_CORRUPT', 'the store has no counters');
  return countsCodec.decode(counts);
}
