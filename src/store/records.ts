// The shapes kept in the store, and their one codec each (JSON, checked on the way in and out).
import { z } from 'zod';
import { Protection } from '../api/interchange.js';
import { KeySettings } from '../api/key-settings.js';
import { StoredState } from '../api/key-state.js';
import { PUBKEY } from '../api/pubkey.js';
import { DepositRecord } from '../deposit/deposit-record.js';
import { PkmError } from '../errors.js';
import {
  fieldNames,
  hasUnknownField,
  isCount,
  isList,
  isOptional,
  isString,
  readShortcut,
  writeChecker,
} from './write-check.js';

/**
 * How a cooling key's last holder stopped (DESIGN.md "Safety rules"):
 *   - confirmed: its containers are known stopped; the same pod name gets it back at once;
 *   - unconfirmed: deleted gracefully, no confirmation yet; the same name waits like any pod;
 *   - fenced: the stop cannot be known (a forced deletion, a pod lost with its node, a
 *     restored store): nobody gets it before the reuse delay and the liveness gate.
 */
export const CoolingStop = z.enum(['confirmed', 'unconfirmed', 'fenced']);
export type CoolingStop = z.infer<typeof CoolingStop>;

const NEVER_HANDED_OUT: ReadonlySet<string> = new Set(['reported', 'conflict', 'retired']);

const Pubkey = z.string().regex(PUBKEY);

/** A secret as sealed by the store's SecretCodec; `alg` names the codec that can open it. */
export const SealedSecret = z
  .object({
    alg: z.string().min(1),
    data: z.string(),
    /** id of the KEK the data key was wrapped with */ kek: z.string().optional(),
  })
  .strict();
export type SealedSecret = z.infer<typeof SealedSecret>;

/** A signed deposit transaction: its hash is known before it is sent (and it can be sent again). */
export const DepositTx = z
  .object({
    hash: z.string().regex(/^0x[0-9a-f]{64}$/),
    nonce: z.number().int().nonnegative(),
    /** The signed raw transaction, to rebroadcast the very same one after a crash. */
    raw: z.string().regex(/^0x[0-9a-f]+$/),
    sentAt: z.number().int().nonnegative(),
  })
  .strict();
export type DepositTx = z.infer<typeof DepositTx>;

const KeyEvent = z
  .object({
    at: z.number().int().nonnegative(),
    event: z.enum([
      'created',
      'allocated',
      'released',
      'reclaimed',
      'deposit-sent',
      'deposited',
      'deposit-failed',
      'retired',
      'fenced',
      'confirmed',
      'reported',
      /** Taken back from its pod: its agent is to delete it from the VC (schema 7). */
      'leaving',
      /** Deleted from its old pod's VC with proof, and handed to the move's destination. */
      'moved',
      /** Deleted from its pod's VC with proof: free at once (schema 7). */
      'removed',
    ]),
    pod: z.string().optional(),
  })
  .strict();
export type KeyEvent = z.infer<typeof KeyEvent>;

/** The most recent events kept per key; the full audit trail is a bucket of its own. */
export const HISTORY_LIMIT = 16;

const KeyRecordFields = z
  .object({
    pubkey: Pubkey,
    /** Absent only for a key a pod reported that the store cannot derive: it never had it. */
    secret: SealedSecret.optional(),
    state: StoredState,
    /** allocated: the holder; cooling: the pod that released it; reported: the reporter. */
    pod: z.string().min(1).optional(),
    /** cooling: how its last holder stopped; absent (older stores): unconfirmed. */
    stop: CoolingStop.optional(),
    /** cooling: the UID of the pod that released it, when known. */
    uid: z.string().min(1).optional(),
    /** When the key entered its state (ms since epoch). */
    since: z.number().int().nonnegative(),
    createdAt: z.number().int().nonnegative(),
    /** EIP-2334 path, for keys derived from a mnemonic. */
    path: z.string().optional(),
    /** Deposit data, when deposits are configured (--network). */
    deposit: DepositRecord.optional(),
    /** The deposit transaction, once signed (send mode). */
    tx: DepositTx.optional(),
    /** Why the deposit failed, for state deposit-failed. */
    depositError: z.string().optional(),
    /** Uploaded slashing protection, merged (EIP-3076). */
    protection: Protection.optional(),
    /** For state conflict: the pods that run it. */
    conflictPods: z.array(z.string()).optional(),
    /**
     * Kept from every pod until this time (ms since epoch): a pod claimed to run it without a
     * proof yet. Written on a store several servers share (since schema 6), so that every
     * server keeps the hold, not only the one that heard the claim; it keeps it in memory too.
     */
    heldUntil: z.number().int().nonnegative().optional(),
    /**
     * allocated only (since schema 7): the server took the key back from its pod (a smaller
     * count, a move, a rebalance). The pod still holds it, for its VC may still run it, until
     * its agent reports it deleted (removal.ts). `to`: the pod a move hands it to then.
     */
    leaving: z
      .object({ since: z.number().int().nonnegative(), to: z.string().min(1).optional() })
      .strict()
      .optional(),
    /** Per-validator settings read from the last VC that ran it (since schema 7). */
    settings: KeySettings.optional(),
    history: z.array(KeyEvent).max(HISTORY_LIMIT),
  })
  .strict();

type Rule<T> = readonly [(value: T) => boolean, string];

/** The rules across a key record's fields, checked at every read and every write. */
const KEY_RECORD_RULES: ReadonlyArray<Rule<KeyRecord>> = [
  [
    // A fenced cooling key may name no pod: a free key a restore fenced had no holder.
    (r) =>
      r.state === 'cooling'
        ? r.pod !== undefined || r.stop === 'fenced'
        : (r.state === 'allocated' || r.state === 'reported') === (r.pod !== undefined),
    'pod is set exactly for allocated, cooling and reported keys',
  ],
  [
    (r) => r.state === 'cooling' || (r.stop === undefined && r.uid === undefined),
    'stop and uid are kept for cooling keys only',
  ],
  [
    (r) => r.leaving === undefined || r.state === 'allocated',
    'only an allocated key may be leaving its pod',
  ],
  [
    // A key known by its pubkey alone (reported) can only ever be reported, in conflict or
    // retired: none of these is handed out.
    (r) => r.secret !== undefined || NEVER_HANDED_OUT.has(r.state),
    'only a reported, conflict or retired key may lack its secret',
  ],
];

const KeyRecord = KeyRecordFields.superRefine((r, ctx) => {
  for (const [holds, message] of KEY_RECORD_RULES)
    if (!holds(r)) ctx.addIssue({ code: 'custom', message });
});
/**
 * Read-only through and through: the store's caches hand every reader the same record object
 * (cache.ts), so no code may change one in place; a transition makes a new one (transitions.ts).
 */
type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;
export type KeyRecord = DeepReadonly<z.infer<typeof KeyRecord>>;
/** A value being built (a record, an answer): its fields may be set until it is handed on. */
export type Draft<T> = { -readonly [K in keyof T]: T[K] };
/** The fields a key record may have (its schema's): what a transition keeps is checked against them. */
export const KEY_RECORD_FIELDS: ReadonlySet<string> = fieldNames(KeyRecordFields);

/** UIDs of earlier incarnations a pod record keeps. */
const MAX_PAST_UIDS = 8;

const PodRecord = z
  .object({
    /** Keys the pod holds, in the order they were handed out. */
    keys: z.array(Pubkey),
    /** Keys the pod released that are still cooling: the same pod gets them back at once. */
    cooling: z.array(Pubkey),
    /**
     * Keys recorded as reported by this pod (state reported, since schema 5): it proved it runs
     * them; never handed out, and counted toward --max-keys-per-pod with `keys`.
     */
    reported: z.array(Pubkey).optional(),
    /** Last change (ms since epoch). */
    since: z.number().int().nonnegative(),
    /**
     * The UID of the pod that holds the keys, as the watcher last saw it. A StatefulSet pod
     * recreated under the same name is the same identity, with a new UID.
     */
    uid: z.string().optional(),
    /** UIDs of earlier incarnations under this name: a late review of one changes nothing. */
    pastUids: z.array(z.string()).max(MAX_PAST_UIDS).optional(),
  })
  .strict();
export type PodRecord = DeepReadonly<z.infer<typeof PodRecord>>;
/** The fields a pod record may have (its schema's). */
export const POD_RECORD_FIELDS: ReadonlySet<string> = fieldNames(PodRecord);

const Count = z.number().int().nonnegative();
const Counts = z
  .object({
    free: Count,
    allocated: Count,
    cooling: Count,
    retired: Count,
    depositing: Count,
    'deposit-failed': Count,
    conflict: Count,
    reported: Count,
    /** Cooling keys that are fenced (counted in `cooling` too). */
    fenced: Count,
    pods: Count,
  })
  .strict();
/** Counters kept in `meta`, updated in the same batch as every change. */
export type Counts = z.infer<typeof Counts>;
export const ZERO_COUNTS: Counts = Object.freeze({
  free: 0,
  allocated: 0,
  cooling: 0,
  retired: 0,
  depositing: 0,
  'deposit-failed': 0,
  conflict: 0,
  reported: 0,
  fenced: 0,
  pods: 0,
});

/** Every key the store holds, in any state (fenced keys are counted once: in `cooling`). */
export function totalKeys(c: Counts): number {
  const { pods: _pods, fenced: _fenced, ...byState } = c;
  return Object.values(byState).reduce((sum, n) => sum + n, 0);
}

// What a write checks. A record is checked against its whole schema where it comes in from
// outside (the API's and the import's own schemas). A record this server builds is typed, and
// its write checks what the types cannot say, and what keeps a key in one state and one pod:
// no field the schema does not know (the read would refuse the record), the pubkeys' form,
// the states, the times the indexes order keys by (a NaN `since` would sort a cooling key
// first, as released long ago), the history's length, and the rules across fields. The whole
// schema at every write cost an allocation more main-thread CPU than anything else the floor
// does not do: 100-140 us of 560-740 (issue 17, point 4).
// A read from the store runs the same checks on the parsed JSON (they check each field's type
// too, so they are the schema's, field by field); only what they refuse goes to the whole
// schema, for its answer and its message (write-check.ts's readShortcut).

const isPubkey = (pk: unknown): boolean => typeof pk === 'string' && PUBKEY.test(pk);
const isName = (v: unknown): boolean => v === undefined || (typeof v === 'string' && v !== '');

const STATES: ReadonlySet<string> = new Set(StoredState.options);
const STOPS: ReadonlySet<string> = new Set(CoolingStop.options);
const KEY_EVENTS: ReadonlySet<string> = new Set(KeyEvent.shape.event.options);
const KEY_EVENT_FIELDS = fieldNames(KeyEvent);

const SECRET_FIELDS = fieldNames(SealedSecret);
/**
 * Parts of a key record that a transition carries over as they are, made once where they come
 * in (deposits, uploads, the VC's settings): checked against their own schemas when present.
 */
const CARRIED = ['deposit', 'tx', 'protection', 'settings', 'leaving', 'conflictPods'] as const;

/** Why a key record may not be written, if it may not (straight-line: it runs per write). */
function keyRecordProblem(r: KeyRecord): string | undefined {
  if (!isPubkey(r.pubkey)) return 'the pubkey is not 0x and 96 lowercase hex digits';
  if (!STATES.has(r.state) || (r.stop !== undefined && !STOPS.has(r.stop)))
    return 'an unknown state or stop';
  if (
    !isCount(r.since) ||
    !isCount(r.createdAt) ||
    (r.heldUntil !== undefined && !isCount(r.heldUntil))
  )
    return 'a time is not a whole number of ms';
  if (!isName(r.pod) || !isName(r.uid)) return 'a pod name or UID is not a non-empty string';
  if (!isOptional(r.path, isString) || !isOptional(r.depositError, isString))
    return 'a path or deposit error is not a string';
  if (!Array.isArray(r.history) || r.history.length > HISTORY_LIMIT)
    return `the history is not a list of at most ${HISTORY_LIMIT} events`;
  for (const e of r.history)
    if (
      !isCount(e.at) ||
      !KEY_EVENTS.has(e.event) ||
      !isOptional(e.pod, isString) ||
      hasUnknownField(e, KEY_EVENT_FIELDS)
    )
      return 'an invalid history event';
  const secret = r.secret;
  if (
    secret !== undefined &&
    (typeof secret.alg !== 'string' ||
      secret.alg === '' ||
      typeof secret.data !== 'string' ||
      (secret.kek !== undefined && typeof secret.kek !== 'string') ||
      hasUnknownField(secret, SECRET_FIELDS))
  )
    return 'the sealed secret is malformed';
  // The common case first, without a field looked up by name.
  const carriesSome =
    r.deposit !== undefined ||
    r.tx !== undefined ||
    r.protection !== undefined ||
    r.settings !== undefined ||
    r.leaving !== undefined ||
    r.conflictPods !== undefined;
  // Checked as written: JSON, not the objects (a Date would pass as an object, and be written
  // as its toJSON string).
  if (carriesSome)
    for (const field of CARRIED) {
      const value = r[field];
      if (value === undefined) continue;
      const written: unknown = JSON.parse(JSON.stringify(value));
      if (!KeyRecordFields.shape[field].safeParse(written).success) return `${field} is malformed`;
    }
  for (const [holds, why] of KEY_RECORD_RULES) if (!holds(r)) return why;
  return undefined;
}

function podRecordProblem(p: PodRecord): string | undefined {
  if (!isList(p.keys, isPubkey) || !isList(p.cooling, isPubkey))
    return 'keys or cooling is not a list of pubkeys';
  if (!isOptional(p.reported, (r) => isList(r, isPubkey)))
    return 'reported is not a list of pubkeys';
  if (!isCount(p.since)) return 'since is not a whole number of ms';
  if (!isOptional(p.uid, isString)) return 'the UID is not a string';
  if (!isOptional(p.pastUids, (u) => isList(u, isString) && u.length <= MAX_PAST_UIDS))
    return `pastUids is not a list of at most ${MAX_PAST_UIDS} strings`;
  return undefined;
}

/** Checks with the whole schema (records written seldom: the counters, once a batch). */
function schemaChecker<T>(name: string, schema: z.ZodType<T>): (value: T) => void {
  return (value) => {
    const checked = schema.safeParse(value);
    if (!checked.success)
      throw new PkmError(
        'INTERNAL',
        `refusing to write an invalid ${name}: ${checked.error.message}`,
      );
  };
}

function codec<T>(
  name: string,
  schema: z.ZodType<T>,
  check: (value: T) => void,
  /** What a read may take without the whole schema (write-check.ts's readShortcut). */
  shortcut?: (raw: unknown) => raw is T,
) {
  return {
    /** Whether a read takes `raw` past the whole schema (exposed for the tests). */
    readsPastSchema(raw: unknown): boolean {
      return shortcut?.(raw) ?? false;
    },
    encode(value: T): string {
      check(value);
      return JSON.stringify(value);
    },
    /**
     * The text of a valid value in the schema's field order, to compare values (the stored
     * text of another writer, or of an older spelling, against a record as this one saw it).
     */
    canonical(value: T): string {
      const checked = schema.safeParse(value);
      if (!checked.success)
        throw new PkmError('INTERNAL', `a ${name} as read is not valid: ${checked.error.message}`);
      return JSON.stringify(checked.data);
    },
    decode(text: string): T {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (cause) {
        throw new PkmError('STORE_CORRUPT', `a stored ${name} is not JSON`, { cause });
      }
      // The whole schema cost a cold read two thirds of its time, 4 reads an allocation from
      // the pool (issue 17, point 4): what passes the write's checks needs no second look.
      if (shortcut?.(raw)) return raw;
      const checked = schema.safeParse(raw);
      if (!checked.success) {
        throw new PkmError(
          'STORE_CORRUPT',
          `a stored ${name} is malformed: ${checked.error.message}`,
        );
      }
      return checked.data;
    },
  };
}

export const keyRecordCodec = codec(
  'key record',
  KeyRecord,
  writeChecker('key record', KeyRecordFields, keyRecordProblem),
  readShortcut(KeyRecordFields, keyRecordProblem),
);
export const podRecordCodec = codec(
  'pod record',
  PodRecord,
  writeChecker('pod record', PodRecord, podRecordProblem),
  readShortcut(PodRecord, podRecordProblem),
);
export const countsCodec = codec('counts record', Counts, schemaChecker('counts record', Counts));

/** Counts `record` into `counts` (sign 1) or out of them (sign -1): its state, and a fence. */
export function countRecord(counts: Counts, record: KeyRecord, sign: 1 | -1): void {
  counts[record.state] += sign;
  if (record.state === 'cooling' && record.stop === 'fenced') counts.fenced += sign;
}

/** Appends an event, keeping the newest HISTORY_LIMIT. */
export function withEvent(history: readonly KeyEvent[], event: KeyEvent): KeyEvent[] {
  return [...history, event].slice(-HISTORY_LIMIT);
}

export { Protection };
