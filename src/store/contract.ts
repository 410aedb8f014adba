// The store contract: everything the domain (allocation/, server/, kube/, deposit/, the CLI)
// asks of a store. The LevelDB Store implements it; a second backend (PostgreSQL, issue 15)
// implements exactly this, and test/store/conformance.ts checks its rules on every backend.
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
  /** What happened, for the audit log (written in the same batch). */
  readonly events?: readonly NewAuditEvent[];
  /** Values for the meta bucket, written in the same batch (undefined: deleted). */
  readonly meta?: ReadonlyArray<readonly [string, string | undefined]>;
}

/** The two indexes of keys not held by a pod. */
export type PoolIndex = 'unallocated' | 'cooling';

export interface IndexEntry {
  readonly since: number;
  readonly pubkey: string;
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
 */
export interface StoreContract {
  /** Seals and opens secret keys (a store opened without its KEK can do neither). */
  readonly secrets: SecretCodec;
  /** False once closed (the readiness probe reports it). */
  readonly isOpen: boolean;

  getMeta(key: string): Promise<string | undefined>;
  /** The next EIP-2334 index to derive a key at (as of the last commit). */
  nextKeyIndex(): number;
  /**
   * Ties the store to its key source: a store bound to one mnemonic fingerprint refuses
   * another (MNEMONIC_MISMATCH) and refuses none; an unbound store is bound by the first one.
   */
  bindKeySource(fingerprint: string | undefined): Promise<void>;
  /** Counters by stored state, plus fenced cooling keys and pods that hold keys. */
  storedCounts(): Counts;

  getPod(name: string): Promise<PodRecord | undefined>;
  getKey(pubkey: string): Promise<KeyRecord | undefined>;
  /** Records of keys that must exist; a missing one is STORE_CORRUPT. */
  getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]>;
  /**
   * Up to `limit` entries of a pool index, by time then pubkey; with `atOrBefore`, only those
   * whose time is at most that.
   */
  oldest(index: PoolIndex, limit: number, atOrBefore?: number): Promise<IndexEntry[]>;
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
  'nextKeyIndex' | 'storedCounts' | 'getPod' | 'getKeys' | 'indexEntries' | 'pods' | 'keyRecords'
>;
