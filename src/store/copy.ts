// `pkm db copy` (issue 15, point 6): a whole store moved between backends through the store
// contract. Records go in as they are (secrets stay sealed) through the target's commit(), so
// the target derives its own pool indexes and counters; the meta values that are state, not
// derived, are copied as-is, among them the wrapped data key: the same KEK opens both stores.
import { PkmError } from '../errors.js';
import type { NewAuditEvent } from './audit.js';
import { MetaKey } from './buckets.js';
import type { KeyChange, PodChange, StoreContract } from './contract.js';
import type { Counts } from './records.js';

/**
 * Meta copied as-is. Not here: the schema version (the target's own), the counters (derived by
 * the target's commits) and the next key index (passed as a change's nextKeyIndex, so the
 * target's in-memory value follows).
 */
export const COPIED_META = [
  MetaKey.dataKey,
  MetaKey.targetKekId,
  MetaKey.migratedKekId,
  MetaKey.nextDataKey,
  MetaKey.mnemonicFingerprint,
  MetaKey.genesisValidatorsRoot,
  MetaKey.restoredAt,
] as const;

export interface CopyResult {
  readonly keys: number;
  readonly pods: number;
  readonly events: number;
}

/**
 * Whether a store holds anything a copy would write: a key, a pod, an event or a copied meta
 * value. A copy that died midway leaves at least its first chunk, so it is never empty.
 */
export async function isEmptyStore(store: StoreContract): Promise<boolean> {
  for await (const _ of store.keyRecords()) return false;
  for await (const _ of store.pods()) return false;
  if ((await store.events(0, 1)).length > 0) return false;
  if (store.nextKeyIndex() > 0) return false;
  for (const key of COPIED_META) if ((await store.getMeta(key)) !== undefined) return false;
  return true;
}

/** Refuses a target that is not empty, having changed nothing. */
export async function requireEmptyTarget(store: StoreContract, where: string): Promise<void> {
  if (!(await isEmptyStore(store)))
    throw new PkmError(
      'RESTORE_TARGET_NOT_EMPTY',
      `--to ${where} is not empty: copy into a new database or an empty folder (nothing was changed)`,
    );
}

async function inChunks<T>(
  items: AsyncIterable<T>,
  size: number,
  write: (chunk: T[]) => Promise<void>,
): Promise<number> {
  let chunk: T[] = [];
  let n = 0;
  for await (const item of items) {
    chunk.push(item);
    n++;
    if (chunk.length === size) {
      await write(chunk);
      chunk = [];
    }
  }
  if (chunk.length > 0) await write(chunk);
  return n;
}

/**
 * Copies everything from `source` into the empty `target`, `chunk` records per commit. The meta
 * and the next key index go first: a target a crash left half-copied never re-derives an index
 * in use nor makes a data key of its own (and it is refused as not empty by another copy).
 */
export async function copyStore(
  source: StoreContract,
  target: StoreContract,
  chunk = 500,
): Promise<CopyResult> {
  const meta: Array<readonly [string, string]> = [];
  for (const key of COPIED_META) {
    const value = await source.getMeta(key);
    if (value !== undefined) meta.push([key, value]);
  }
  // Marked unfinished until finishCopy: a server refuses a half-written copy (startup.ts).
  meta.push([MetaKey.copyUnfinished, new Date().toISOString()]);
  await target.commit({ keys: [], pods: [], meta, nextKeyIndex: source.nextKeyIndex() });

  const keys = await inChunks(source.keyRecords(), chunk, (records) =>
    target.commit({ keys: records.map((after): KeyChange => ({ after })), pods: [] }),
  );
  const pods = await inChunks(source.pods(), chunk, (records) =>
    target.commit({
      keys: [],
      pods: records.map(([name, after]): PodChange => ({ name, after })),
    }),
  );
  // Events are numbered by the target in commit order: read and written oldest first, they get
  // the same numbers as in the source.
  let events = 0;
  for (;;) {
    const batch = await source.events(events, chunk);
    if (batch.length === 0) break;
    const staged = batch.map(({ seq, ...event }): NewAuditEvent => {
      if (seq !== events++)
        throw new PkmError('STORE_CORRUPT', `the source's audit log has a gap before event ${seq}`);
      return event;
    });
    await target.commit({ keys: [], pods: [], events: staged });
  }
  return { keys, pods, events };
}

/** Removes the unfinished mark: called only once the copy is complete and checked. */
export async function finishCopy(target: StoreContract): Promise<void> {
  await target.commit({ keys: [], pods: [], meta: [[MetaKey.copyUnfinished, undefined]] });
}

/**
 * The copy, checked against its source: the same counters, next key index and audit length,
 * and every secret opens, with the target's own key ring, to the very bytes the source's gives.
 * Both stores must be opened with their KEK. Throws STORE_CORRUPT naming a pubkey, never a
 * secret.
 */
export async function verifyCopy(source: StoreContract, target: StoreContract): Promise<void> {
  const differ = (what: string) =>
    new PkmError('STORE_CORRUPT', `the copy differs from its source: ${what}`);
  const a = source.storedCounts();
  const b = target.storedCounts();
  for (const k of Object.keys(a) as (keyof Counts)[])
    if (a[k] !== b[k]) throw differ(`counter ${k} is ${b[k]}, the source's ${a[k]}`);
  if (source.nextKeyIndex() !== target.nextKeyIndex()) throw differ('the next key index');
  for await (const r of source.keyRecords()) {
    const copy = await target.getKey(r.pubkey);
    if (copy === undefined) throw differ(`key ${r.pubkey} is missing`);
    if (r.secret === undefined) continue;
    if (copy.secret === undefined) throw differ(`key ${r.pubkey} lost its secret`);
    const mine = source.secrets.open(r.secret, r.pubkey);
    const theirs = target.secrets.open(copy.secret, r.pubkey);
    if (Buffer.compare(Buffer.from(mine), Buffer.from(theirs)) !== 0)
      throw differ(`key ${r.pubkey}'s secret opens to another value`);
  }
}
