// The store contract: everything the domain (allocation/, server/, kube/, deposit/, the CLI)
// asks of a store. The LevelDB Store implements it; a second backend (PostgreSQL, issue 15)
// implements exactly this, and test/store/conformance.ts checks its rules on every backend.
import type { Clock } from '../clock.js';
import type { AuditEvent, NewAuditEvent } from './audit.js';
import type { KeyRing } from './encryption.js';
import type { Counts, KeyRecord, PodRecord } from './records.js';
import type { SecretCodec } from './secret-codec.js';

export interface KeyChange {
  readonly before?: KeyRecord;
  readonly after: KeyRecord;
}
export interface PodChange {
  readonly name: string;
  readonly before?: PodRecord;
  /** Absent: the pod record is deleted. */
  readonly after?: PodRecord;
}
export interface Change {
  readonly keys: readonly KeyChange[];
  readonly pods: readonly PodChange[];
  /** The next derivation index, when this change used indexes. */
  readonly nextKeyIndex?: number;
  /**
   * With nextKeyIndex: the store's next index as the change's reads first saw it (Transaction).
   * Several servers: if the store's index moved past it since (another server's commit, seen by
   * a refresh), the change is refused as STORE_CONFLICT and its group runs again.
   */
  readonly keyIndexBasis?: number;
  /** What happened, for the audit log (written in the same batch). */
  readonly events?: readonly NewAuditEvent[];
  /** Values for the meta bucket, written in the same batch (undefined: deleted). */
  readonly meta?: ReadonlyArray<readonly [string, string | undefined]>;
  /**
   * Meta values the change was decided on (undefined: absent), checked like before-images on a
   * store several servers share: a value another server changed refuses the change.
   */
  readonly metaBefore?: ReadonlyArray<readonly [string, string | undefined]>;
  /**
   * The change makes new keys under --max-total-keys: it applies only if the keys that exist
   * (totalKeys) stay at most this many. A store several servers share checks it under the
   * commit's lock (STORE_CONFLICT otherwise: the caller reads the counters again); one with a
   * single writer has its caller's count right already.
   */
  readonly maxTotalKeys?: number;
  /**
   * Written only while no other server has the store open (a KEK rotation: another server
   * would seal new keys with the data key being retired). A shared store checks it under the
   * commit's lock (STORE_LOCKED otherwise); a store with one writer has none other.
   */
  readonly alone?: boolean;
  /**
   * Written only while this server holds the leadership (see Leadership): a deposit's signed
   * transaction, whose nonce only the leader may take. Refused (NOT_LEADER) otherwise.
   */
  readonly leaderOnly?: boolean;
}

/**
 * Work that must run once however many servers share the store (DESIGN.md, "Store": the
 * deposit sender and reconciler, the watcher's releases, timers) runs on the one leader. A
 * store with one server (LevelDB) is always its leader.
 */
export interface Leadership {
  /** True while this server holds the leadership. */
  readonly isLeader: boolean;
  /**
   * Calls `listener(true)` once elected and `listener(false)` the moment the leadership is lost
   * (or given up at stop); called at once with the present state. Returns an unsubscribe.
   */
  watch(listener: (leader: boolean) => void): () => void;
  /** Starts campaigning (no-op for a store that is always its own leader). */
  start(): void;
  /** Gives the leadership up and stops campaigning. */
  stop(): Promise<void>;
}

/** Pubkeys a pool read passes over (StoreContract.oldest). */
export interface PassOver {
  readonly size: number;
  has(pubkey: string): boolean;
  /**
   * How many pubkeys have left it so far, if it counts them. While the count stays the same it
   * has only grown, so a store may remember which keys it passed over for it, and start its
   * next read past them (index-window.ts).
   */
  readonly removals?: number;
}

/** The two indexes of keys not held by a pod. */
export type PoolIndex = 'unallocated' | 'cooling';

export interface IndexEntry {
  readonly since: number;
  readonly pubkey: string;
}

/** A pool entry with its key's record. */
export interface PoolRecord extends IndexEntry {
  readonly record: KeyRecord;
}

/** The first entries of a pool; `complete`: there are no more (that fit the read). */
export interface PoolRecords {
  readonly records: readonly PoolRecord[];
  readonly complete: boolean;
}

/**
 * The rules every backend keeps (DESIGN.md, "Store" and "Key lifecycle"):
 *   - commit() is all or nothing: a change that fails validation, or a write that fails,
 *     leaves every read as it was; once it resolves, the change is durable and every read
 *     sees it.
 *   - The pool indexes and counters are derived from each record's before and after by the
 *     store, never by the caller.
 *   - The next key index only grows; audit events are numbered 0, 1, 2... in commit order.
 *   - A store of a newer schema version is refused when opened (SCHEMA_TOO_NEW).
 *   - A store several servers share (PostgreSQL) also checks every before-image against what is
 *     stored, under the commit's lock, and the next key index against the one this server last
 *     saw: another server's change in between refuses the whole change (STORE_CONFLICT, nothing
 *     written), and the caller re-reads and tries again (group-commit.ts). A store with one
 *     writer (LevelDB) has its one group committer keep them true instead.
 */
export interface StoreContract {
  /** Seals and opens secret keys (a store opened without its KEK can do neither). */
  readonly secrets: SecretCodec;
  /** False once closed (the readiness probe reports it). */
  readonly isOpen: boolean;
  /**
   * Other servers commit to this store too (PostgreSQL): two reads may see different commits,
   * so reads that disagree are a race (STORE_CONFLICT: read again), not a damaged store.
   */
  readonly concurrentWriters: boolean;
  /**
   * How many pkm servers have this store open, this one included; undefined where the store
   * cannot tell. A LevelDB store is locked by its one process: always 1.
   */
  serversRunning(): Promise<number | undefined>;

  getMeta(key: string): Promise<string | undefined>;
  /** The next EIP-2334 index to derive a key at (as of the last commit). */
  nextKeyIndex(): number;
  /**
   * Ties the store to its key source: a store bound to one mnemonic fingerprint refuses
   * another (MNEMONIC_MISMATCH) and refuses none; an unbound store is bound by the first one.
   */
  bindKeySource(fingerprint: string | undefined): Promise<void>;
  /**
   * Counters by stored state, plus fenced cooling keys and pods that hold keys, as of this
   * server's last commit or refresh().
   */
  storedCounts(): Counts;
  /**
   * Reads what other servers committed since (the counters, the next key index): storedCounts()
   * and nextKeyIndex() are then those of the database. A no-op for a store with one writer.
   */
  refresh(): Promise<void>;

  getPod(name: string): Promise<PodRecord | undefined>;
  /** The records of those of the pods named that exist. */
  getPods(names: readonly string[]): Promise<Map<string, PodRecord>>;
  getKey(pubkey: string): Promise<KeyRecord | undefined>;
  /** Records of keys that must exist; a missing one is STORE_CORRUPT. */
  getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]>;
  /**
   * Up to `limit` entries of a pool index, by time then pubkey; with `atOrBefore`, only those
   * whose time is at most that. A store several servers share may answer the oldest of its
   * own share of the pool first (PgStoreOptions.lanes), so that they seldom pick the same keys.
   * Keys in `passOver` are neither answered nor counted: a transaction's own staged keys.
   */
  oldest(
    index: PoolIndex,
    limit: number,
    atOrBefore?: number,
    passOver?: PassOver,
  ): Promise<IndexEntry[]>;
  /**
   * oldest(), each entry with its key's record (on PostgreSQL one round trip, not two). With
   * `need` below `limit`, a store that picks by lanes may answer fewer than `limit` (but at
   * least `need`, or all there are) from its own lane: `complete` then says whether that is all.
   */
  oldestRecords(
    index: PoolIndex,
    limit: number,
    opts?: { readonly atOrBefore?: number; readonly need?: number },
  ): Promise<PoolRecords>;
  /** How many cooling keys were released strictly after `cutoff`. */
  countCoolingAfter(cutoff: number): Promise<number>;
  /** Every entry of a pool index, in order (for the invariant check, not the request path). */
  indexEntries(index: PoolIndex): Promise<IndexEntry[]>;
  /** Pod records in name order, starting after `after`. */
  pods(opts?: { after?: string }): AsyncIterable<[string, PodRecord]>;
  /** Every key record, in pubkey order. */
  keyRecords(): AsyncIterable<KeyRecord>;

  /** Audit events from sequence number `since` on, oldest first, at most `limit`. */
  events(since: number, limit: number): Promise<AuditEvent[]>;
  /** The newest events of these types, newest first, looking at most `scan` events back. */
  lastEvents(types: ReadonlySet<string>, limit: number, scan?: number): Promise<AuditEvent[]>;

  /** Writes a change atomically and durably (see above). */
  commit(change: Change): Promise<void>;

  /** The ring of data keys; INVALID_CONFIG for a store opened without its KEK. */
  keyRing(): KeyRing;
  /**
   * The wall clock this store's times are written and compared in: the system's for a store
   * of one server; the database's for one several servers share (PgStore.sharedClock).
   */
  readonly clock: Clock;
  /** Who runs the once-only work; the same object on every call. */
  leadership(): Leadership;
  /**
   * The token heartbeats are answered with (keys/proof.ts challenges). It changes when holders
   * must re-assert what they run: a LevelDB server's every start; on a shared database it is the
   * database's own, one value for every server, so a pod's proofs hold whichever answers.
   */
  bootToken(): Promise<string>;
  /** Lets overwritten values (an old wrapped data key) leave the disk. */
  compact(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The reads `pkm db check` and `pkm deposits export` make. A PostgreSQL store gives them from
 * one snapshot (PgStore.snapshot), so they see one instant while servers write; a LevelDB
 * store gives them itself, as the one process holding its lock.
 */
export type StoreReads = Pick<
  StoreContract,
  | 'refresh'
  | 'nextKeyIndex'
  | 'storedCounts'
  | 'getPod'
  | 'getKeys'
  | 'indexEntries'
  | 'pods'
  | 'keyRecords'
>;
