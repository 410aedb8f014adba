// Imports EIP-2335 keystores into the pool, with their EIP-3076 history (issue 14). Keys that
// may still run elsewhere enter fenced: cooling, with no holder, from now, so no pod gets one
// before the reuse delay and the liveness gate (DESIGN.md "Key lifecycle"); keys that never ran
// enter free. Each chunk of keys is one atomic batch through the store's one committer: a crash
// leaves every key fully imported (record, index, counters, audit event) or absent.
import { timingSafeEqual } from 'node:crypto';
import type { Interchange, Protection } from '../api/interchange.js';
import type { Clock } from '../clock.js';
import { type ErrorCode, PkmError, toPkmError } from '../errors.js';
import type { KdfPool } from '../keys/kdf-pool.js';
import { type Keystore, kdfMemoryBytes, parseKeystore } from '../keys/keystore.js';
import { type OpenedKey, openKeystore } from '../keys/keystore-open.js';
import type { NewAuditEvent } from '../store/audit.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyChange, StoreContract } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import type { GroupCommitter } from './group-commit.js';
import { merge, sameProtection, summarise } from './interchange.js';
import { checkConfiguredRoot } from './protection.js';
import type { Transaction } from './transaction.js';
import { fenced as fencedRecord } from './transitions.js';

/** One keystore to import, named by its file (CLI) or its place in the request (HTTP). */
export interface ImportSource {
  readonly name: string;
  readonly keystore: unknown;
  readonly password: string;
}

export interface ImportFailure {
  readonly source: string;
  readonly code: ErrorCode;
  readonly message: string;
}

export interface ImportResult {
  /** Keys new to the store (or a reported key's secret, now kept). */
  readonly imported: string[];
  /**
   * Keys the store held already with the same secret: unchanged, but for stricter history, and
   * a fence where one the pool could hand out may now run elsewhere.
   */
  readonly skipped: string[];
  readonly failed: ImportFailure[];
  /** Keys whose interchange entry was merged into their record (EIP-3076). */
  readonly protected: string[];
  /** Interchange entries for keys not in this import: not stored. */
  readonly protectionIgnored: string[];
  /** Each source that opened, and its key's pubkey (to answer per source, in order). */
  readonly opened: Map<string, string>;
}

export interface ImportProgress {
  readonly total: number;
  readonly decrypted: number;
  readonly imported: number;
}

export interface ImportDeps {
  readonly store: StoreContract;
  readonly group: GroupCommitter;
  readonly clock: Clock;
  /** --network's or --genesis-validators-root's root; else the store's is used. */
  readonly genesisValidatorsRoot?: string | undefined;
  /**
   * Called inside the batch with the keys entering fenced cooling, before it is written: a
   * running allocator counts their reuse delay on its monotonic clock (Cooling.released).
   */
  readonly onFenced?: (pubkeys: readonly string[]) => void;
}

export interface ImportOptions {
  /** The keys never ran anywhere: they enter free, not fenced. */
  readonly neverValidated: boolean;
  readonly interchange?: Interchange | undefined;
  /** Keys per atomic batch (default 100). */
  readonly chunkSize?: number;
  readonly onProgress?: (progress: ImportProgress) => void;
}

export const DEFAULT_CHUNK = 100;

/**
 * The genesis_validators_root an interchange must carry: the configured one, else the store's
 * (MetaKey.genesisValidatorsRoot). History anchored to no chain is refused, and so is another
 * chain's: nothing is imported then.
 */
export async function checkHistoryRoot(
  store: Pick<StoreContract, 'getMeta'> | Transaction,
  configured: string | undefined,
  interchange: Interchange,
): Promise<string> {
  const gvr = interchange.metadata.genesis_validators_root.toLowerCase();
  const stored = (await store.getMeta(MetaKey.genesisValidatorsRoot))?.toLowerCase();
  const expected = configured?.toLowerCase() ?? stored;
  if (expected === undefined)
    throw new PkmError(
      'GENESIS_ROOT_UNKNOWN',
      `the slashing protection is for genesis_validators_root ${gvr}, but this store knows no chain yet: pass --network or --genesis-validators-root (nothing was imported)`,
    );
  if (expected !== gvr)
    throw new PkmError(
      'INTERCHANGE_MISMATCH',
      `the interchange's genesis_validators_root ${gvr} is not ${expected} (${configured === undefined ? "the store's" : 'the configured one'}): it is another chain's history (nothing was imported)`,
    );
  return gvr;
}

type Parsed = { source: ImportSource; keystore: Keystore };

function failure(source: string, err: unknown): ImportFailure {
  const e = toPkmError(err);
  return { source, code: e.code, message: e.message };
}

/** Imports the sources; a bad keystore fails alone, a store error stops the import. */
export async function importKeys(
  deps: ImportDeps,
  pool: KdfPool,
  sources: readonly ImportSource[],
  opts: ImportOptions,
): Promise<ImportResult> {
  const summary = opts.interchange ? summarise(opts.interchange) : new Map<string, Protection>();
  checkConfiguredRoot(
    deps.genesisValidatorsRoot,
    await deps.store.getMeta(MetaKey.genesisValidatorsRoot),
    '--network (or --genesis-validators-root)',
  );
  if (opts.interchange)
    await checkHistoryRoot(deps.store, deps.genesisValidatorsRoot, opts.interchange);
  const result: ImportResult = {
    imported: [],
    skipped: [],
    failed: [],
    protected: [],
    protectionIgnored: [],
    opened: new Map(),
  };
  const parsed: Parsed[] = [];
  for (const source of sources) {
    try {
      parsed.push({ source, keystore: parseKeystore(source.keystore) });
    } catch (err) {
      result.failed.push(failure(source.name, err));
    }
  }
  const progress = { total: sources.length, decrypted: result.failed.length, imported: 0 };
  const seen = new Set<string>();
  const size = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK);
  for (let at = 0; at < parsed.length; at += size) {
    const chunk = parsed.slice(at, at + size);
    const opened = await Promise.all(
      chunk.map(async ({ source, keystore }) => {
        try {
          return { source: source.name, key: await openKeystore(pool, keystore, source.password) };
        } catch (err) {
          result.failed.push(failure(source.name, err));
          return undefined;
        } finally {
          progress.decrypted++;
          opts.onProgress?.({ ...progress });
        }
      }),
    );
    const keys = opened.filter((o) => o !== undefined);
    for (const { source, key } of keys) result.opened.set(source, key.pubkey);
    try {
      const staged = await deps.group.run((tx) => stageChunk(tx, deps, keys, summary, opts));
      result.imported.push(...staged.imported);
      result.skipped.push(...staged.skipped);
      result.failed.push(...staged.failed);
      result.protected.push(...staged.protected);
    } finally {
      for (const { key } of keys) key.secret.fill(0);
    }
    for (const { key } of keys) seen.add(key.pubkey);
    progress.imported = result.imported.length;
    opts.onProgress?.({ ...progress });
  }
  result.protectionIgnored.push(...[...summary.keys()].filter((pk) => !seen.has(pk)));
  return result;
}

interface Opened {
  readonly source: string;
  readonly key: OpenedKey;
}

/** The records of one chunk, staged as one batch; per-key refusals are answered, not thrown. */
async function stageChunk(
  tx: Transaction,
  deps: ImportDeps,
  keys: readonly Opened[],
  summary: ReadonlyMap<string, Protection>,
  opts: ImportOptions,
): Promise<Omit<ImportResult, 'protectionIgnored' | 'opened'>> {
  const out = {
    imported: [] as string[],
    skipped: [] as string[],
    failed: [] as ImportFailure[],
    protected: [] as string[],
  };
  // Checked again inside the batch: a running server's root may have been fixed meanwhile.
  const storedRoot = await tx.getMeta(MetaKey.genesisValidatorsRoot);
  if (opts.interchange) await checkHistoryRoot(tx, deps.genesisValidatorsRoot, opts.interchange);
  const now = deps.clock();
  const changes: KeyChange[] = [];
  const events: NewAuditEvent[] = [];
  const fenced: string[] = [];
  const staged = new Set<string>();
  for (const { source, key } of keys) {
    const { pubkey } = key;
    const history = summary.get(pubkey);
    const existing = await tx.getKey(pubkey);
    if (staged.has(pubkey)) {
      out.skipped.push(pubkey); // the same key twice in one import
      continue;
    }
    if (existing === undefined) {
      const record = newRecord(deps.store, key, now, opts.neverValidated, history);
      changes.push({ after: record });
      if (record.state === 'cooling') fenced.push(pubkey);
      events.push(importEvent(now, pubkey, source, record.state === 'cooling' ? 'fenced' : 'free'));
      out.imported.push(pubkey);
    } else if (existing.secret === undefined) {
      // A key a pod reported that the store could not derive: its secret is now kept, its
      // state (never handed out) stays until an operator acts.
      const after: KeyRecord = {
        ...withHistory(existing, history),
        secret: deps.store.secrets.seal(key.secret, pubkey),
      };
      changes.push({ before: existing, after });
      events.push(importEvent(now, pubkey, source, `secret kept, still ${existing.state}`));
      out.imported.push(pubkey);
    } else if (!sameSecret(deps.store, existing, key)) {
      out.failed.push({
        source,
        code: 'KEYSTORE_CONFLICT',
        message: `${pubkey} is stored already with another secret (nothing of this keystore was imported; run pkm db check)`,
      });
      continue;
    } else {
      let after = withHistory(existing, history);
      if (after !== existing)
        events.push({
          at: now,
          type: 'protection',
          pubkeys: [pubkey],
          detail: `imported history of ${source}`,
        });
      // Imported without --never-validated, the key may run elsewhere now: one the pool could
      // hand out (free, or cooling after a stop that was not fenced) is fenced from now, like a
      // new import. A fenced one keeps its fence, so running the same import again changes
      // nothing; a held one stays with its pod (it is never taken from under a pod).
      if (!opts.neverValidated && refencible(existing)) {
        after = fencedRecord(after, now);
        fenced.push(pubkey);
        events.push(importEvent(now, pubkey, source, 'fenced again: it may run elsewhere'));
      }
      if (after !== existing) changes.push({ before: existing, after });
      out.skipped.push(pubkey);
    }
    if (history !== undefined) out.protected.push(pubkey);
    staged.add(pubkey);
  }
  if (changes.length === 0) return out;
  const fixesRoot = opts.interchange !== undefined && storedRoot === undefined;
  tx.stage({
    keys: changes,
    pods: [],
    events,
    ...(fixesRoot
      ? {
          meta: [
            [
              MetaKey.genesisValidatorsRoot,
              opts.interchange.metadata.genesis_validators_root.toLowerCase(),
            ] as const,
          ],
        }
      : {}),
  });
  if (fenced.length > 0) deps.onFenced?.(fenced);
  return out;
}

/** A key the pool could hand out now, not yet fenced. */
function refencible(r: KeyRecord): boolean {
  return r.state === 'free' || (r.state === 'cooling' && r.stop !== 'fenced');
}

/**
 * An imported key's record. Fenced (the default): cooling with no holder, from now, with a
 * `fenced` event, so the hand-off also fences its protection at the current slot (protection.ts
 * handOut). Never validated: free at once.
 */
function newRecord(
  store: StoreContract,
  key: OpenedKey,
  now: number,
  neverValidated: boolean,
  history: Protection | undefined,
): KeyRecord {
  const base = {
    pubkey: key.pubkey,
    secret: store.secrets.seal(key.secret, key.pubkey),
    since: now,
    createdAt: now,
    ...(history === undefined ? {} : { protection: history }),
  };
  return neverValidated
    ? { ...base, state: 'free', history: [{ at: now, event: 'created' }] }
    : {
        ...base,
        state: 'cooling',
        stop: 'fenced',
        history: [
          { at: now, event: 'created' },
          { at: now, event: 'fenced' },
        ],
      };
}

/** The record with the interchange's history merged (the stricter of both); itself if unchanged. */
function withHistory(r: KeyRecord, history: Protection | undefined): KeyRecord {
  if (history === undefined) return r;
  const merged = merge(r.protection ?? {}, history);
  if (sameProtection(merged, r.protection ?? {})) return r;
  return { ...r, protection: merged };
}

function sameSecret(store: StoreContract, existing: KeyRecord, key: OpenedKey): boolean {
  if (existing.secret === undefined) return false;
  const stored = store.secrets.open(existing.secret, existing.pubkey);
  try {
    return stored.length === key.secret.length && timingSafeEqual(stored, key.secret);
  } finally {
    stored.fill(0);
  }
}

function importEvent(now: number, pubkey: string, source: string, how: string): NewAuditEvent {
  return { at: now, type: 'import', pubkeys: [pubkey], detail: `${source}: ${how}` };
}

/** The most memory one KDF of these keystores takes (to size the pool). */
export function largestKdf(sources: readonly ImportSource[]): number {
  let most = 0;
  for (const { keystore } of sources) {
    try {
      most = Math.max(most, kdfMemoryBytes(parseKeystore(keystore).crypto.kdf));
    } catch {
      // an unparseable keystore fails on its own later
    }
  }
  return most;
}
