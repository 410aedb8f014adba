// Every change of a key's state, and of a pod's record, in one place (DESIGN.md "Key
// lifecycle"). Each function takes a record as it is and returns it as it becomes. A field
// a transition does not own is kept: a pod's uid, a key's deposit data, transaction and
// slashing protection. Fields that belong to one state only (a cooling key's stop, a
// conflict's pods) leave with that state.

import type { KeySettings } from '../api/key-settings.js';
import type { PodChange } from '../store/contract.js';
import {
  type CoolingStop,
  type DepositTx,
  type Draft,
  type KeyEvent,
  type KeyRecord,
  type PodRecord,
  type Protection,
  type SealedSecret,
  withEvent,
} from '../store/records.js';

/** The fields only some states carry: a transition to another state drops them. */
type OneStateField = 'pod' | 'stop' | 'uid' | 'conflictPods' | 'depositError' | 'leaving';
/**
 * The optional fields every transition keeps as they are: inState copies exactly these (the
 * required ones the record's type makes it set). test/allocation/transitions.test.ts checks
 * every transition against the schema's fields.
 */
const KEPT = ['secret', 'path', 'deposit', 'tx', 'protection', 'heldUntil', 'settings'] as const;
/** A field the schema gains fails to compile here until it is kept or made one state's. */
type Unplaced = Exclude<
  keyof KeyRecord,
  (typeof KEPT)[number] | OneStateField | 'pubkey' | 'createdAt' | 'state' | 'since' | 'history'
>;
const _everyFieldPlaced: [Unplaced] extends [never] ? true : Unplaced = true;

function keep<K extends (typeof KEPT)[number]>(out: Draft<KeyRecord>, r: KeyRecord, field: K) {
  const value = r[field];
  if (value !== undefined) out[field] = value;
}

/**
 * `r` in `state` from `since`: the fields of KEPT as they are, none of one state only (the
 * caller sets the new state's own). Built field by field: an object spread followed by a
 * field its source lacks (`{ ...r, pod }` after dropping pod) takes V8's slow path, about 2 us
 * a record against 0.2 (issue 17, point 4).
 */
function inState(
  r: KeyRecord,
  state: KeyRecord['state'],
  since: number,
  history: KeyRecord['history'] = r.history,
): Draft<KeyRecord> {
  const out: Draft<KeyRecord> = { pubkey: r.pubkey, state, since, createdAt: r.createdAt, history };
  for (const field of KEPT) keep(out, r, field);
  return out;
}

function event(r: KeyRecord, e: KeyEvent): KeyEvent[] {
  return withEvent(r.history, e);
}

/** free, cooling or reported -> allocated(pod). */
export function handedTo(
  r: KeyRecord,
  pod: string,
  now: number,
  why: 'allocated' | 'reclaimed',
): KeyRecord {
  const after = inState(r, 'allocated', now, event(r, { at: now, event: why, pod }));
  after.pod = pod;
  return after;
}

/**
 * allocated(pod) -> cooling(pod, since). `stop` tells how the holder's stop is known: a
 * forced deletion fences the key (see records.ts CoolingStop).
 */
export function released(
  r: KeyRecord,
  pod: string,
  now: number,
  stop: CoolingStop,
  uid: string | undefined,
): KeyRecord {
  const history = event(r, { at: now, event: stop === 'fenced' ? 'fenced' : 'released', pod });
  const after = inState(r, 'cooling', now, history);
  after.pod = pod;
  after.stop = stop;
  if (uid !== undefined) after.uid = uid;
  return after;
}

/** cooling, unconfirmed -> cooling, confirmed: the holder's stop is now known. */
export function stopConfirmed(r: KeyRecord, now: number): KeyRecord {
  if (r.state !== 'cooling' || r.stop === 'confirmed' || r.stop === 'fenced') return r;
  return {
    ...r,
    stop: 'confirmed',
    history: event(r, { at: now, event: 'confirmed', pod: r.pod }),
  };
}

/**
 * free or cooling -> cooling, fenced: whatever ran it before may still run it (a forced
 * deletion; a restored store cannot know). The cooling counts from `since` (now, unless a
 * fence follows a release); the last holder stays named.
 */
export function fenced(r: KeyRecord, now: number, since = now): KeyRecord {
  const holder = r.state === 'cooling' ? r.pod : undefined;
  const history = event(r, {
    at: now,
    event: 'fenced',
    ...(holder === undefined ? {} : { pod: holder }),
  });
  const after = inState(r, 'cooling', since, history);
  if (holder !== undefined) after.pod = holder;
  if (r.state === 'cooling' && r.uid !== undefined) after.uid = r.uid;
  after.stop = 'fenced';
  return after;
}

/** any -> retired: never handed out again. */
export function retired(r: KeyRecord, now: number): KeyRecord {
  return inState(r, 'retired', now, event(r, { at: now, event: 'retired' }));
}

/** allocated, cooling or reported -> conflict(pods): two pods run it. */
export function inConflict(r: KeyRecord, pods: readonly string[], now: number): KeyRecord {
  const after = inState(r, 'conflict', r.state === 'conflict' ? r.since : now);
  after.conflictPods = [...new Set([...(r.conflictPods ?? []), ...pods])];
  return after;
}

/**
 * cooling -> cooling, from now: its last holder reports it still runs it (a heartbeat), while
 * its stop is not confirmed. The reuse delay counts from this last sign of life.
 */
export function stillRunning(r: KeyRecord, now: number): KeyRecord {
  return { ...r, since: now };
}

/**
 * free or cooling -> reported(pod): a pod reports running a key the store does not record as
 * that pod's. Without a proof of possession it does not become the pod's; it is never handed
 * out again until an operator acts.
 */
export function reportedRunning(r: KeyRecord, pod: string, now: number): KeyRecord {
  const after = inState(r, 'reported', now, event(r, { at: now, event: 'reported', pod }));
  after.pod = pod;
  return after;
}

/**
 * A key a pod reports running that the store had no record of: held by the reporter, never
 * handed out. A derived key keeps its secret and path; any other is known by pubkey only.
 */
export function reportedBy(
  pubkey: string,
  pod: string,
  now: number,
  derived?: { readonly secret: SealedSecret; readonly path: string },
): KeyRecord {
  return {
    pubkey,
    state: 'reported',
    pod,
    since: now,
    createdAt: now,
    ...(derived ?? {}),
    history: [{ at: now, event: 'reported', pod }],
  };
}

/**
 * allocated(pod) -> allocated(pod), leaving: the server takes the key back (a smaller count, a
 * move to `to`). The pod keeps holding it until its agent reports it deleted from its VC.
 */
export function leavingFor(r: KeyRecord, now: number, to: string | undefined): KeyRecord {
  return {
    ...r,
    leaving: { since: now, ...(to === undefined ? {} : { to }) },
    history: event(r, {
      at: now,
      event: 'leaving',
      ...(r.pod === undefined ? {} : { pod: r.pod }),
    }),
  };
}

/** allocated(pod), leaving -> allocated(pod): taken back no more (a larger count again). */
export function staying(r: KeyRecord): KeyRecord {
  const { leaving: _leaving, ...rest } = r;
  return rest;
}

/**
 * allocated(pod), leaving -> allocated(to): its old pod's VC deleted it with proof (removal.ts),
 * so it goes to the move's destination at once, with no reuse delay (DESIGN.md "Safety rules").
 */
export function movedTo(r: KeyRecord, to: string, now: number): KeyRecord {
  const after = inState(r, 'allocated', now, event(r, { at: now, event: 'moved', pod: to }));
  after.pod = to;
  return after;
}

/** allocated(pod), leaving -> free: its pod's VC deleted it with proof; any pod may have it. */
export function removedWithProof(r: KeyRecord, now: number): KeyRecord {
  return inState(
    r,
    'free',
    now,
    event(r, { at: now, event: 'removed', ...(r.pod === undefined ? {} : { pod: r.pod }) }),
  );
}

/** Any state: the per-validator settings its last VC had (fee recipient, graffiti, gas limit). */
export function withSettings(r: KeyRecord, settings: KeySettings): KeyRecord {
  return { ...r, settings: { ...r.settings, ...settings } };
}

/** Any state: uploaded slashing protection, already merged with what the key carried. */
export function withProtection(r: KeyRecord, protection: Protection): KeyRecord {
  return { ...r, protection };
}

/** depositing: the signed deposit transaction is stored before it is broadcast. */
export function depositSigned(r: KeyRecord, tx: DepositTx, now: number): KeyRecord {
  return { ...r, tx, history: event(r, { at: now, event: 'deposit-sent' }) };
}

/** depositing -> free: the deposit was mined; its transaction stays on the record. */
export function deposited(r: KeyRecord, now: number): KeyRecord {
  return inState(r, 'free', now, event(r, { at: now, event: 'deposited' }));
}

/** depositing -> deposit-failed: kept, for an operator to retry or retire. */
export function depositFailed(r: KeyRecord, reason: string, now: number): KeyRecord {
  const after = inState(r, 'deposit-failed', now, event(r, { at: now, event: 'deposit-failed' }));
  after.depositError = reason;
  return after;
}

export interface PodEdit {
  /** Keys the pod now holds, appended in order. */
  readonly hold?: readonly string[];
  /** Keys the pod no longer holds (released, retired, in conflict). */
  readonly drop?: readonly string[];
  /** Keys the pod released: they cool under its name. */
  readonly cool?: readonly string[];
  /** Keys that leave its cooling list (taken back, moved, retired). */
  readonly uncool?: readonly string[];
  /** Keys now recorded as reported by it (a proven heartbeat claim). */
  readonly report?: readonly string[];
  /** Keys that leave its reported list (retired, in conflict). */
  readonly unreport?: readonly string[];
  /** The UID of the pod now holding the keys; undefined keeps the recorded one. */
  readonly uid?: string;
  /** A new incarnation of unknown UID: the old UID no longer names the holder. */
  readonly forgetUid?: boolean;
}

/** UIDs of a pod name's earlier incarnations kept, so a late word about one is known stale. */
const PAST_UIDS = 8;

/**
 * A pod record after an edit; undefined when it then holds nothing and cools nothing (the
 * record is deleted). Every field is set here: what the edit does not change (the uid, the
 * earlier UIDs) as it was (test/allocation/transitions.test.ts checks it over the schema's).
 */
export function editPod(
  before: PodRecord | undefined,
  edit: PodEdit,
  now: number,
): PodRecord | undefined {
  const drop = new Set([...(edit.drop ?? []), ...(edit.hold ?? [])]);
  const uncool = new Set([...(edit.uncool ?? []), ...(edit.hold ?? []), ...(edit.cool ?? [])]);
  const keys = [...(before?.keys ?? []).filter((k) => !drop.has(k)), ...(edit.hold ?? [])];
  const cooling = [...(before?.cooling ?? []).filter((k) => !uncool.has(k)), ...(edit.cool ?? [])];
  const unreport = new Set([...(edit.unreport ?? []), ...(edit.report ?? [])]);
  const reported = [
    ...(before?.reported ?? []).filter((k) => !unreport.has(k)),
    ...(edit.report ?? []),
  ];
  if (keys.length === 0 && cooling.length === 0 && reported.length === 0) return undefined;
  const oldUid = before?.uid;
  const oldPast = before?.pastUids;
  const uid = edit.uid ?? (edit.forgetUid ? undefined : oldUid);
  const past =
    oldUid !== undefined && oldUid !== uid
      ? [...(oldPast ?? []).filter((u) => u !== oldUid), oldUid].slice(-PAST_UIDS)
      : oldPast;
  // Field by field, as inState builds a key record (and for the same reason).
  const after: Draft<PodRecord> = { keys, cooling, since: now };
  if (reported.length > 0) after.reported = reported;
  if (uid !== undefined) after.uid = uid;
  if (past !== undefined && past.length > 0) after.pastUids = past;
  return after;
}

/** Every field of a pod record is set by editPod: one the schema gains fails to compile here. */
type UnsetPodField = Exclude<
  keyof PodRecord,
  'keys' | 'cooling' | 'since' | 'reported' | 'uid' | 'pastUids'
>;
const _everyPodFieldSet: [UnsetPodField] extends [never] ? true : UnsetPodField = true;

/** The change that takes a pod record from `before` to `after` (deleted when undefined). */
export function podChange(
  name: string,
  before: PodRecord | undefined,
  after: PodRecord | undefined,
): PodChange {
  if (before) return after ? { name, before, after } : { name, before };
  return after ? { name, after } : { name };
}
