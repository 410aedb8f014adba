// A pod's agent reports keys it deleted from its validator client (issue 16, point 1): with the
// VC's answer to DELETE /eth/v1/keystores (each key's status and the EIP-3076 interchange that
// came back) and the per-validator settings it read before. One commit records all of it:
//   - the returned slashing protection is merged into each of the pod's keys it covers, so it
//     is durable before (in the same batch as) any key may go elsewhere;
//   - the settings go with each key;
//   - each leaving key is judged (removal-proof.ts): with proof it goes at once to the move's
//     destination, or is free; without, it cools under its pod's name like a released key (the
//     reuse delay, then the liveness gate); a key the VC could not delete stays leaving.
// A key that is not leaving stays the pod's (its agent imports it again); a key that is not
// the pod's (any more) is left alone: a report sent again after its answer was lost changes
// nothing twice.
import type { KeySettings } from '../api/key-settings.js';
import { PkmError } from '../errors.js';
import type { NewAuditEvent } from '../store/audit.js';
import type { KeyChange } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import { podHolds } from './heartbeat.js';
import { merge, type Protection } from './interchange.js';
import { PodEdits } from './pod-edits.js';
import { judgeRemoval, type KeyPast, type VcDeleteStatus } from './removal-proof.js';
import type { Transaction } from './transaction.js';
import {
  movedTo,
  released,
  removedWithProof,
  withProtection,
  withSettings,
} from './transitions.js';

export interface RemovalReport {
  readonly pubkey: string;
  readonly status: VcDeleteStatus;
  /** Read from the VC before the delete. */
  readonly settings?: KeySettings | undefined;
}

/**
 * What became of each reported key:
 *   - moved: deleted with proof, now the move's destination's (`to`);
 *   - freed: deleted with proof, free for any pod at once;
 *   - cooling: deleted without proof (`why`): cooling under the pod's name;
 *   - leaving: the VC could not delete it (`why`): nothing changed;
 *   - kept: not leaving, still the pod's (its protection and settings were stored);
 *   - not-held: not the pod's key (any more): nothing changed.
 */
export type RemovalOutcome = 'moved' | 'freed' | 'cooling' | 'leaving' | 'kept' | 'not-held';

export interface RemovalResult {
  readonly pubkey: string;
  readonly outcome: RemovalOutcome;
  readonly to?: string;
  readonly why?: string;
}

export interface RemovalRules {
  readonly now: number;
  readonly maxKeysPerPod: number;
  /** Each key's entry in the returned interchange; undefined: no root known to check it by. */
  readonly entries: ReadonlyMap<string, Protection> | undefined;
  /** What the chain shows of a key, asked before the lock (undefined: no gate). */
  readonly activeOnChain: (pubkey: string) => boolean | undefined;
  readonly fenceable: boolean;
  /**
   * The server is resyncing (a start's window, a restore's hold): a key with proof is freed
   * but not handed to another pod now; allocation keeps it until the window is over.
   */
  readonly resyncing: boolean;
  /**
   * The reporter's pod UID, from its token: a report from another incarnation than the keys'
   * holder proves nothing of the holder's VC (OTHER_INCARNATION, nothing changed).
   */
  readonly uid?: string | undefined;
}

export async function recordRemovalsIn(
  tx: Transaction,
  pod: string,
  reports: readonly RemovalReport[],
  rules: RemovalRules,
): Promise<RemovalResult[]> {
  const { now } = rules;
  const pods = new PodEdits(tx, now);
  const keys: KeyChange[] = [];
  const results: RemovalResult[] = [];
  const events: NewAuditEvent[] = [];
  const uid = (await tx.getPod(pod))?.uid;
  if (rules.uid !== undefined && uid !== undefined && uid !== rules.uid)
    throw new PkmError(
      'OTHER_INCARNATION',
      `pod ${pod}'s keys are held by another incarnation of it (UID ${uid}), not the reporter (${rules.uid}): its VC's deletes prove nothing of theirs (nothing was changed)`,
    );
  for (const report of reports) {
    const { pubkey } = report;
    const before = await tx.getKey(pubkey);
    if (before === undefined || before.state !== 'allocated' || before.pod !== pod) {
      results.push({ pubkey, outcome: 'not-held' });
      continue;
    }
    const entry = rules.entries?.get(pubkey);
    // The VC's history is stored whatever the verdict (never with an `error`: the spec returns
    // none for it), merged to the stricter of both.
    let r: KeyRecord = before;
    if (entry !== undefined && report.status !== 'error')
      r = withProtection(r, merge(r.protection ?? {}, entry));
    if (report.settings !== undefined) r = withSettings(r, report.settings);
    const result = await judgeOne(r, before, report, rules, pods, pod, uid);
    if (result.after !== before) keys.push({ before, after: result.after });
    results.push(result.result);
    if (result.event) events.push(result.event);
  }
  if (keys.length > 0) tx.stage({ keys, pods: pods.changes(), events });
  return results;
}

interface Judged {
  readonly after: KeyRecord;
  readonly result: RemovalResult;
  readonly event?: NewAuditEvent;
}

async function judgeOne(
  r: KeyRecord,
  before: KeyRecord,
  report: RemovalReport,
  rules: RemovalRules,
  pods: PodEdits,
  pod: string,
  uid: string | undefined,
): Promise<Judged> {
  const { pubkey } = report;
  const { now } = rules;
  const leaving = before.leaving;
  if (leaving === undefined) return { after: r, result: { pubkey, outcome: 'kept' } };
  const past: KeyPast = {
    // What the server had before this report: the VC's record must reach it.
    recorded: before.protection,
    activeOnChain: rules.activeOnChain(pubkey),
    rootKnown: rules.entries !== undefined,
    fenceable: rules.fenceable,
  };
  const verdict = judgeRemoval({ status: report.status, entry: rules.entries?.get(pubkey) }, past);
  const event = (type: NewAuditEvent['type'], at: string, detail: string): NewAuditEvent => ({
    at: now,
    type,
    pod: at,
    pubkeys: [pubkey],
    detail,
  });
  if (verdict.kind === 'not-removed')
    return { after: r, result: { pubkey, outcome: 'leaving', why: verdict.why } };
  if (verdict.kind === 'no-proof') {
    await pods.edit(pod, { drop: [pubkey], cool: [pubkey] });
    return {
      after: released(r, pod, now, 'unconfirmed', uid),
      result: { pubkey, outcome: 'cooling', why: verdict.why },
      event: event(
        'remove',
        pod,
        `deleted from its VC (${report.status}) without proof: cooling; ${verdict.why}`,
      ),
    };
  }
  const to = leaving.to;
  const why = freedWhy(
    rules,
    to,
    to === undefined ? undefined : await pods.current(to),
    leaving.since,
  );
  if (to !== undefined && why === undefined) {
    await pods.edit(pod, { drop: [pubkey] });
    await pods.edit(to, { hold: [pubkey] });
    return {
      after: movedTo(r, to, now),
      result: { pubkey, outcome: 'moved', to },
      event: event('move', to, `from ${pod}: deleted from its VC (${report.status}) with proof`),
    };
  }
  await pods.edit(pod, { drop: [pubkey] });
  return {
    after: removedWithProof(r, now),
    result: { pubkey, outcome: 'freed', ...(why === undefined ? {} : { why }) },
    event: event(
      'remove',
      pod,
      `deleted from its VC (${report.status}) with proof: free${why === undefined ? '' : `; ${why}`}`,
    ),
  };
}

/** Why a key with proof does not go to its move's destination now; undefined: it does. */
function freedWhy(
  rules: RemovalRules,
  to: string | undefined,
  dest: Parameters<typeof podHolds>[0],
  markedAt: number,
): string | undefined {
  if (to === undefined) return undefined;
  // A destination that holds nothing and whose record changed since the move was marked was
  // released meanwhile (a deletion, a count of 0): the key must not land with a pod that is
  // gone, where nothing would run it and no agent would give it back (DESIGN.md "Key
  // lifecycle"). A pod that never held keys has no record, and is a new pod joining.
  if (dest !== undefined && dest.keys.length === 0 && dest.since >= markedAt)
    return `${to} was released after the move was marked (deleted, or its count set to 0), so it is free instead`;
  if (rules.resyncing)
    return `the server is resyncing, so it is free (not handed to ${to}) until holders re-asserted their keys`;
  if (podHolds(dest) >= rules.maxKeysPerPod)
    return `${to} holds --max-keys-per-pod (${rules.maxKeysPerPod}) already, so it is free instead`;
  return undefined;
}
