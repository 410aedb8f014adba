// UnallocateAllKeys(pod), and what a later word on the same pod's stop changes (DESIGN.md
// "Safety rules"). A deletion does not prove that a pod stopped, so released keys cool, and
// how the stop is known decides who may have them back:
//   - confirmed (the kubelet's final DELETE, a terminal last view, the pod's own release): the
//     same pod name gets them back at once; other pods after the reuse delay;
//   - unconfirmed (a graceful deletion): everyone, the same name too, waits the reuse delay; a
//     confirmation that follows lets the same name have them at once;
//   - forced (gracePeriodSeconds 0 from anyone but the kubelet, a pod gone while running):
//     fenced. Nobody gets them before the reuse delay and the liveness gate; a forced deletion
//     that follows a graceful one fences the keys that one left unconfirmed.
import type { NewAuditEvent } from '../store/audit.js';
import type { KeyChange } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';
import { editPod, fenced, podChange, released, stopConfirmed } from './transitions.js';

/**
 * How the server knows that a pod's containers stopped (DESIGN.md "Safety rules"):
 *   - confirmed: the kubelet's own final DELETE, the watcher's last view of the pod terminal (or
 *     every container terminated), or the pod's own release;
 *   - unconfirmed: a graceful deletion; the keys cool, and the same name gets them back only
 *     once a confirmation follows;
 *   - forced: a DELETE with gracePeriodSeconds 0 from anyone but the kubelet, or a pod that
 *     vanished while its containers ran: the keys are fenced.
 */
export type StopProof = 'confirmed' | 'unconfirmed' | 'forced';

export interface ReleaseOptions {
  readonly stop: StopProof;
  /** The UID of the pod that stopped: a release for another incarnation changes nothing. */
  readonly uid?: string | undefined;
}

export interface ReleaseResult {
  /** Keys the pod held that now cool. */
  readonly released: string[];
  /** Keys fenced by this release, released now or earlier. */
  readonly fenced: string[];
  /** Cooling keys whose stop this release confirmed. */
  readonly confirmed: string[];
}

const NOTHING: ReleaseResult = { released: [], fenced: [], confirmed: [] };

export async function releaseIn(
  tx: Transaction,
  now: number,
  pod: string,
  opts: ReleaseOptions,
): Promise<ReleaseResult> {
  const before = await tx.getPod(pod);
  if (!before) return NOTHING;
  // A review of an older incarnation of a recreated pod must not touch the new one's keys: its
  // UID is not the holder's, or is one the name had before.
  if (opts.uid !== undefined && before.uid !== undefined && before.uid !== opts.uid) return NOTHING;
  if (opts.uid !== undefined && (before.pastUids ?? []).includes(opts.uid)) return NOTHING;
  const stop = opts.stop === 'forced' ? 'fenced' : opts.stop;
  const uid = opts.uid ?? before.uid;
  const held = await tx.getKeys(before.keys);
  const keys: KeyChange[] = held.map((r) => ({
    before: r,
    after: released(r, pod, now, stop, uid),
  }));
  // The word on the stop also applies to what this incarnation released before.
  const earlier = (await tx.getKeys(before.cooling)).filter((r) => sameIncarnation(r, uid));
  const confirmed: string[] = [];
  const fencedNow = stop === 'fenced' ? held.map((r) => r.pubkey) : [];
  for (const r of earlier) {
    if (r.stop === 'fenced' || r.stop === 'confirmed') continue;
    const after = stop === 'fenced' ? fenced(r, now, r.since) : stopConfirmed(r, now);
    if (after === r || stop === 'unconfirmed') continue;
    keys.push({ before: r, after });
    (stop === 'fenced' ? fencedNow : confirmed).push(r.pubkey);
  }
  if (keys.length === 0) return NOTHING;
  const releasedKeys = [...before.keys];
  const after = editPod(before, { drop: releasedKeys, cool: releasedKeys }, now);
  const events: NewAuditEvent[] = [];
  if (releasedKeys.length > 0)
    events.push({
      at: now,
      type: 'release',
      pod,
      pubkeys: releasedKeys,
      detail: `stop ${opts.stop}`,
    });
  if (fencedNow.length > 0)
    events.push({
      at: now,
      type: 'fence',
      pod,
      pubkeys: fencedNow,
      detail: 'stop not confirmed: fenced',
    });
  if (confirmed.length > 0)
    events.push({ at: now, type: 'confirm', pod, pubkeys: confirmed, detail: 'stop confirmed' });
  tx.stage({ keys, pods: [podChange(pod, before, after)], events });
  return { released: releasedKeys, fenced: fencedNow, confirmed };
}

/** A cooling key released by the incarnation `uid` names (or of unknown UID, when it is too). */
function sameIncarnation(r: KeyRecord, uid: string | undefined): boolean {
  return r.uid === uid || r.uid === undefined;
}
