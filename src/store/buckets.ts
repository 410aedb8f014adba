// The whole on-disk layout of the store, in one place.
// Bucket names are never reused for another meaning; bump SCHEMA_VERSION and add a
// migration in schema.ts when a shape changes.

export const SCHEMA_VERSION = 7;

/**
 * LevelDB's memtable (and log) before it is written out as a table: records are keyed by
 * pubkey, spread over the whole key space, so each table written out overlaps the whole next
 * level, and merging it in rewrites that level. At LevelDB's default of 4 MiB that merging
 * kept a second thread busy a quarter of the time under allocations, beside the main thread
 * (issue 17, point 4); 32 MiB merges eight times less often. It costs up to two buffers of
 * memory while writes run, and a longer log to replay at a start (bench/scale measures the
 * first start after a fill: within its 2 s bound).
 */
export const WRITE_BUFFER_BYTES = 32 * 1024 * 1024;

/** Sublevel names. */
export const Bucket = {
  /** pubkey -> KeyRecord: the one source of truth for a key's state. */
  keys: 'keys',
  /** pod -> PodRecord: the keys a pod holds, and its cooling keys for same-pod return. */
  pods: 'pods',
  /** timeIndexKey(since, pubkey) -> pubkey: free keys, oldest freed first. */
  unallocated: 'unallocated',
  /** timeIndexKey(since, pubkey) -> pubkey: released keys, by release time. */
  cooling: 'cooling',
  /** MetaKey -> value. */
  meta: 'meta',
  /** eventKey(seq) -> AuditEvent: the audit log, appended in the batch of each change. */
  events: 'events',
} as const;

export const MetaKey = {
  schemaVersion: 'schema-version',
  counts: 'counts',
  /** The next EIP-2334 validator index to derive; written in the batch that uses an index. */
  nextKeyIndex: 'next-key-index',
  /** Fingerprint of the mnemonic keys are derived from (never the mnemonic itself). */
  mnemonicFingerprint: 'mnemonic-fingerprint',
  /** The data key, wrapped by the KEK (encryption.ts). */
  dataKey: 'data-key',
  /** KEK rotation (kek-rotation.ts): the id of the KEK being rotated to. */
  targetKekId: 'target-kek-id',
  /** The id of the KEK the last finished rotation moved every record to. */
  migratedKekId: 'migrated-kek-id',
  /** During a rotation: the new data key, and the old one, both wrapped by the new KEK. */
  nextDataKey: 'next-data-key',
  /** genesis_validators_root of the interchanges uploaded (EIP-3076), when no network names it. */
  genesisValidatorsRoot: 'genesis-validators-root',
  /**
   * Set by `pkm db restore` (wall ms): the next start holds every move and every derivation
   * for a full reuse delay; removed once that hold has passed.
   */
  restoredAt: 'restored-at',
  /**
   * Set by `pkm db copy` in its first commit and removed only once the copy is complete and
   * checked: a server refuses to start on a copy that died midway (it lacks keys or pods).
   */
  copyUnfinished: 'copy-unfinished',
  /**
   * A store several servers share (wall ms): until then no server derives a new key, because
   * one of them is looking for keys a pod reported among the indexes ahead (heartbeats). The
   * commit of any derivation checks it under the commit's lock (pg/write.ts).
   */
  derivationPause: 'derivation-pause',
  /**
   * Set by the first start that found no secret kept in plaintext (reseal.ts): later starts
   * skip that scan of every key record. Only builds older than schema 4 wrote plaintext, and
   * they refuse a store at a newer schema, which every store holding this value is at.
   */
  secretsSealed: 'secrets-sealed',
} as const;

const TIME_DIGITS = 16;

/**
 * Index key ordered by time, then pubkey: LevelDB sorts keys bytewise, so a fixed-width
 * decimal timestamp makes "oldest first" a plain forward iteration.
 *
 * Built by join, which makes one flat string: `+` makes a pair of the parts (a V8 cons string)
 * that comparisons take a slow path for. The in-memory window (index-window.ts) binary-searches
 * these keys; with pairs its search took 2.4% of the server's main-thread time in
 * bench/allocate's measured run (issue 17, point 4), with flat keys 0.35%.
 */
export function timeIndexKey(since: number, pubkey: string): string {
  return [timePrefix(since), pubkey].join('!');
}

/** The smallest index key at or after `since` (for range bounds). */
export function timePrefix(since: number): string {
  return String(Math.max(0, Math.floor(since))).padStart(TIME_DIGITS, '0');
}

/** Upper bound (inclusive) of every index key whose time is at most `since`. */
export function timeUpperBound(since: number): string {
  return `${timePrefix(since)}!~`;
}

export function parseTimeIndexKey(key: string): { since: number; pubkey: string } {
  const sep = key.indexOf('!');
  return { since: Number(key.slice(0, sep)), pubkey: key.slice(sep + 1) };
}

/** parseTimeIndexKey(key).pubkey, without the rest (pool reads test many keys). */
export function timeIndexPubkey(key: string): string {
  return key.slice(key.indexOf('!') + 1);
}
