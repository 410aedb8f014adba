// The shapes kept in the store, and their one codec each (JSON, checked on the way in and out).
import { z } from 'zod';
import { Protection } from '../api/interchange.js';
import { KeySettings } from '../api/key-settings.js';
import { StoredState } from '../api/key-state.js';
import { PUBKEY } from '../api/pubkey.js';
import { DepositRecord } from '../deposit/deposit-data.js';
import { PkmError } from '../errors.js';

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

const KeyRecord = z
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
  .strict()
  // A fenced cooling key may name no pod: a free key a restore fenced had no holder.
  .refine(
    (r) =>
      r.state === 'cooling'
        ? r.pod !== undefined || r.stop === 'fenced'
        : (r.state === 'allocated' || r.state === 'reported') === (r.pod !== undefined),
    { message: 'pod is set exactly for allocated, cooling and reported keys' },
  )
  .refine((r) => r.state === 'cooling' || (r.stop === undefined && r.uid === undefined), {
    message: 'stop and uid are kept for cooling keys only',
  })
  .refine((r) => r.leaving === undefined || r.state === 'allocated', {
    message: 'only an allocated key may be leaving its pod',
  })
  // A key known by its pubkey alone (reported) can only ever be reported, in conflict or
  // retired: none of these is handed out.
  .refine((r) => r.secret !== undefined || NEVER_HANDED_OUT.has(r.state), {
    message: 'only a reported, conflict or retired key may lack its secret',
  });
export type KeyRecord = z.infer<typeof KeyRecord>;

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
    pastUids: z.array(z.string()).max(8).optional(),
  })
  .strict();
export type PodRecord = z.infer<typeof PodRecord>;

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

function codec<T>(name: string, schema: z.ZodType<T>) {
  return {
    encode(value: T): string {
      const checked = schema.safeParse(value);
      if (!checked.success) {
        throw new PkmError(
          'INTERNAL',
          `refusing to write an invalid ${name}: ${checked.error.message}`,
        );
      }
      return JSON.stringify(checked.data);
    },
    decode(text: string): T {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (cause) {
        throw new PkmError('STORE_CORRUPT', `a stored ${name} is not JSON`, { cause });
      }
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

export const keyRecordCodec = codec('key record', KeyRecord);
export const podRecordCodec = codec('pod record', PodRecord);
export const countsCodec = codec('counts record', Counts);

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
