// A change, as the rows it writes: checked whole before the transaction begins (as LevelDB
// checks its batch before writing), with the pool columns and the counter deltas derived here
// from each record's before and after, never by the caller.
import type { StoredState } from '../../api/key-state.js';
import { PkmError } from '../../errors.js';
import { AuditEvent, type NewAuditEvent } from '../audit.js';
import type { Change, PoolIndex } from '../contract.js';
import {
  type Counts,
  countRecord,
  countsCodec,
  type KeyRecord,
  keyRecordCodec,
  podRecordCodec,
  ZERO_COUNTS,
} from '../records.js';

export interface KeyRow {
  readonly pubkey: string;
  readonly record: string;
  readonly pool: PoolIndex | null;
  readonly since: number;
}

/** Counter changes; may be negative (Counts may not). */
export type CountDelta = Record<keyof Counts, number>;

/** What a record must be as stored for the change to apply: its codec text, or absent. */
export type BeforeImage = readonly [name: string, text: string | undefined];

export interface Plan {
  readonly keys: readonly KeyRow[];
  /** Each changed key's before-image, checked under the commit's lock (write.ts). */
  readonly keyBefores: readonly BeforeImage[];
  readonly podBefores: readonly BeforeImage[];
  readonly metaBefores: readonly BeforeImage[];
  /** Only while this server leads (Change.leaderOnly). */
  readonly leaderOnly: boolean;
  /** Change.maxTotalKeys. */
  readonly maxTotalKeys: number | undefined;
  /** Change.alone. */
  readonly alone: boolean;
  readonly podPuts: ReadonlyArray<readonly [string, string]>;
  readonly podDeletes: readonly string[];
  readonly metaPuts: ReadonlyArray<readonly [string, string]>;
  readonly metaDeletes: readonly string[];
  readonly delta: CountDelta;
  readonly nextKeyIndex: number | undefined;
  readonly events: readonly NewAuditEvent[];
}

const POOL_OF: Partial<Record<StoredState, PoolIndex>> = {
  free: 'unallocated',
  cooling: 'cooling',
};

export function poolOf(record: KeyRecord): PoolIndex | null {
  return POOL_OF[record.state] ?? null;
}

/**
 * The rows of `change`, refused whole (INTERNAL, nothing written) when a record breaks its
 * shape, a key is renamed, or the next key index would fall below `nextKeyIndex`.
 */
export function planChange(change: Change, nextKeyIndex: number): Plan {
  // Later entries for the same name win, as later operations of a LevelDB batch do.
  const keys = new Map<string, KeyRow>();
  // The first before of a name is the stored one; a later entry for it builds on the first.
  const keyBefores = new Map<string, string | undefined>();
  const podBefores = new Map<string, string | undefined>();
  const delta: CountDelta = { ...ZERO_COUNTS };
  const counted = { ...ZERO_COUNTS };
  for (const { before, after } of change.keys) {
    if (before !== undefined && before.pubkey !== after.pubkey)
      throw new PkmError('INTERNAL', 'a key change must keep its pubkey');
    const record = keyRecordCodec.encode(after);
    if (!keyBefores.has(after.pubkey))
      keyBefores.set(after.pubkey, before && keyRecordCodec.canonical(before));
    keys.set(after.pubkey, {
      pubkey: after.pubkey,
      record,
      pool: poolOf(after),
      since: after.since,
    });
    // countRecord keeps Counts non-negative by type only; a delta goes through `counted`.
    Object.assign(counted, ZERO_COUNTS);
    countRecord(counted, after, 1);
    for (const k of keyNames) delta[k] += counted[k];
    if (before) {
      Object.assign(counted, ZERO_COUNTS);
      countRecord(counted, before, 1);
      for (const k of keyNames) delta[k] -= counted[k];
    }
  }
  const pods = new Map<string, string | undefined>();
  for (const { name, before, after } of change.pods) {
    pods.set(name, after === undefined ? undefined : podRecordCodec.encode(after));
    if (!podBefores.has(name)) podBefores.set(name, before && podRecordCodec.canonical(before));
    delta.pods += Number((after?.keys.length ?? 0) > 0) - Number((before?.keys.length ?? 0) > 0);
  }
  const next = change.nextKeyIndex;
  if (next !== undefined && (!Number.isSafeInteger(next) || next < nextKeyIndex))
    throw new PkmError('INTERNAL', `the next key index may only grow (${nextKeyIndex} -> ${next})`);
  const meta = new Map(change.meta ?? []);
  const events = change.events ?? [];
  for (const e of events) {
    const checked = AuditEvent.omit({ seq: true }).safeParse(e);
    if (!checked.success)
      throw new PkmError(
        'INTERNAL',
        `refusing to write an invalid audit event: ${checked.error.message}`,
      );
  }
  return {
    keys: [...keys.values()],
    keyBefores: [...keyBefores],
    podBefores: [...podBefores],
    metaBefores: [...new Map(change.metaBefore ?? [])],
    leaderOnly: change.leaderOnly === true,
    maxTotalKeys: change.maxTotalKeys,
    alone: change.alone === true,
    podPuts: [...pods].flatMap(([name, text]) =>
      text === undefined ? [] : [[name, text] as const],
    ),
    podDeletes: [...pods].flatMap(([name, text]) => (text === undefined ? [name] : [])),
    metaPuts: [...meta].flatMap(([k, v]) => (v === undefined ? [] : [[k, v] as const])),
    metaDeletes: [...meta].flatMap(([k, v]) => (v === undefined ? [k] : [])),
    delta,
    nextKeyIndex: next,
    events,
  };
}

const keyNames = Object.keys(ZERO_COUNTS).filter((k): k is keyof Counts => k in ZERO_COUNTS);

/** `counts` moved by `delta`; a counter below zero means the store and the change disagree. */
export function applyDelta(counts: Counts, delta: CountDelta): Counts {
  const out = { ...counts };
  for (const k of keyNames) out[k] += delta[k];
  // The codec refuses a negative counter (INTERNAL): the transaction then rolls back.
  return countsCodec.decode(countsCodec.encode(out));
}
