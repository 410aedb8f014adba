// A heartbeat reports the keys a pod actually runs. The store may have lost that view (restored
// from an older copy, say), so each reported key is reconciled (DESIGN.md "Safety rules"). A
// heartbeat claims a key for its reporter without proof only where the store records the
// reporter as its holder, or as its last holder:
//   - held by this pod: nothing to do;
//   - cooling under this pod's name: it goes back to this pod if its stop was confirmed (a new
//     incarnation that kept its keystores), or if the pod's token names the very incarnation
//     that released it. Otherwise (a forced or unconfirmed release: the old container may be
//     the one beating) it stays cooling, and the reuse delay counts again from now: nobody, the
//     pod's new incarnation included, gets it while it is reported running.
// Every other key is a claim, and a claim needs a proof of possession (keys/proof.ts): without
// one it is refused and changes nothing, for pubkeys are public and a pod's token is no
// evidence that it runs someone else's key. With a valid proof:
//   - cooling under another pod's name within the reuse delay, or held by another pod: a
//     conflict. Two pods run it. It leaves both pods' lists and is never handed out again until
//     an operator resolves it (retires it);
//   - free, or cooled past the delay: the reporter's, as if handed to it (it holds the key,
//     and no other pod may run it);
//   - not in the store at all: recorded as `reported` by the reporter, never handed out. A key
//     derived from the mnemonic is first searched for among the indexes ahead, and the next
//     index moves past it at once, with or without a proof, so that no other pod is ever
//     handed that index.
// A heartbeat never takes a pod past --max-keys-per-pod: a proven claim beyond it becomes a
// conflict (out of everyone's reach, for the reporter does run it), a reclaim beyond it stays
// cooling.

import type { NewAuditEvent } from '../store/audit.js';
import type { KeyChange } from '../store/contract.js';
import type { KeyRecord, PodRecord } from '../store/records.js';
import type { NewKeyParts } from './new-keys.js';
import { PodEdits } from './pod-edits.js';
import type { Transaction } from './transaction.js';
import {
  editPod,
  handedTo,
  inConflict,
  podChange,
  reportedBy,
  stillRunning,
} from './transitions.js';

export interface HeartbeatResult {
  /** Keys the store thought free or cooling, now this pod's again. */
  readonly reclaimed: string[];
  /** Keys another pod holds as well: now in state conflict. */
  readonly conflicts: string[];
  /** Keys this store will not give (retired, in a deposit), or is still searching for. */
  readonly unknown: string[];
  /** Keys the store had not as this pod's: now recorded as reported by it, never handed out. */
  readonly reported: string[];
  /** Keys cooling under this pod's name, stop not confirmed: they stay out of everyone's reach. */
  readonly stillCooling: string[];
  /** Claims without a valid proof of possession: nothing changed for them. */
  readonly refused: string[];
}

export interface HeartbeatRules {
  /** Whether a cooling key's reuse delay has passed (cooling.ts). */
  readonly cooled: (r: KeyRecord) => boolean;
  /** Record keys the store does not know at once (no mnemonic to search first). */
  readonly placeNow: boolean;
  /** The reporter's pod UID, from its token, when known. */
  readonly uid?: string | undefined;
  /** Told each key the store records as the reporter's: the reporter re-asserted it. */
  readonly reasserted?: (pubkey: string) => void;
  /** Keys whose proof of possession by the reporter was verified (keys/proof.ts). */
  readonly proven: ReadonlySet<string>;
  /** Keys held back from every pod (another pod claimed them, its proof on the way). */
  readonly held?: (r: KeyRecord) => boolean;
  /** --max-keys-per-pod. */
  readonly maxKeysPerPod: number;
  /**
   * The reuse delay (ms): a key the reporter's VC deleted with proof within it, that the
   * reporter says it runs again, is a conflict (see leftWithProof).
   */
  readonly reuseDelayMs?: number;
}

/** What a heartbeat did. */
export interface HeartbeatStep {
  readonly result: HeartbeatResult;
  /**
   * Refused claims on keys the pool could hand out (free, or cooling): the reporter may run
   * them and be proving it, so the allocator holds them back meanwhile (in memory only).
   */
  readonly holdable: string[];
}

export async function heartbeatIn(
  tx: Transaction,
  now: number,
  pod: string,
  pubkeys: readonly string[],
  rules: HeartbeatRules,
): Promise<HeartbeatStep> {
  const result: HeartbeatResult = {
    reclaimed: [],
    conflicts: [],
    unknown: [],
    reported: [],
    stillCooling: [],
    refused: [],
  };
  const holder = await tx.getPod(pod);
  const reported = new Set(pubkeys);
  const records = new Map<string, KeyRecord | undefined>();
  for (const pubkey of reported) records.set(pubkey, await tx.getKey(pubkey));
  // The pod's own keys, and the keys recorded as reported by it: what it holds now.
  let room = rules.maxKeysPerPod - podHolds(holder);
  const pods = new PodEdits(tx, now);
  const keyChanges: KeyChange[] = [];
  const events: NewAuditEvent[] = [];
  const holdable: string[] = [];
  const conflict = async (r: KeyRecord, others: readonly string[], detail: string) => {
    for (const other of others) {
      if (r.state === 'allocated') await pods.edit(other, { drop: [r.pubkey] });
      if (r.state === 'cooling') await pods.edit(other, { uncool: [r.pubkey] });
      if (r.state === 'reported') await pods.edit(other, { unreport: [r.pubkey] });
    }
    keyChanges.push({ before: r, after: inConflict(r, [...others, pod], now) });
    events.push({ at: now, type: 'conflict', pod, pubkeys: [r.pubkey], detail });
    result.conflicts.push(r.pubkey);
  };
  /** A proven claim the pod may take, or (past its limit) a conflict nobody gets. */
  const takeReported = async (r: KeyRecord | undefined, pubkey: string) => {
    if (room <= 0) {
      // A key the store has no record of it can never hand out: refused, so that a pod cannot
      // fill the store with keys it made up. One it could hand out is kept from everyone.
      if (!r) result.refused.push(pubkey);
      else
        await conflict(
          r,
          r.state === 'cooling' && r.pod !== undefined ? [r.pod] : [],
          overLimit(rules.maxKeysPerPod),
        );
      return;
    }
    room--;
    if (!r) {
      // Known by its pubkey alone: recorded as the reporter's, never handed out.
      await pods.edit(pod, { report: [pubkey] });
      keyChanges.push({ after: reportedBy(pubkey, pod, now) });
      result.reported.push(pubkey);
      return;
    }
    // The reporter proved it holds the key, and no other pod may run it: the key is its own.
    if (r.state === 'cooling' && r.pod !== undefined) await pods.edit(r.pod, { uncool: [pubkey] });
    await pods.edit(pod, { hold: [pubkey] });
    keyChanges.push({ before: r, after: handedTo(r, pod, now, 'reclaimed') });
    rules.reasserted?.(pubkey);
    result.reclaimed.push(pubkey);
  };

  for (const pubkey of reported) {
    const r = records.get(pubkey);
    if (r && (r.state === 'allocated' || r.state === 'reported') && r.pod === pod) {
      if (r.state === 'allocated') rules.reasserted?.(pubkey);
      continue;
    }
    if (r?.state === 'cooling' && r.pod === pod) {
      const sameIncarnation =
        rules.uid !== undefined &&
        r.uid === rules.uid &&
        (holder?.uid === undefined || holder.uid === rules.uid);
      if ((r.stop === 'confirmed' || sameIncarnation) && room > 0 && !rules.held?.(r)) {
        room--;
        rules.reasserted?.(pubkey);
        await pods.edit(pod, { hold: [pubkey] });
        keyChanges.push({ before: r, after: handedTo(r, pod, now, 'reclaimed') });
        result.reclaimed.push(pubkey);
      } else {
        keyChanges.push({ before: r, after: stillRunning(r, now) });
        result.stillCooling.push(pubkey);
      }
      continue;
    }
    // The reporter's own agent reported this key deleted from its VC with proof, and now says
    // the VC runs it: the VC lied, or a second agent imported it again (README "Limits"). The
    // proof is void, and another pod may hold the key already: it is a conflict, out of
    // everyone's reach until an operator acts (DESIGN.md "Key lifecycle"). No proof of
    // possession is asked: the claim is against the reporter itself, and only a key it held
    // within the reuse delay can be named so.
    if (r && rules.reuseDelayMs !== undefined && leftWithProof(r, pod, now - rules.reuseDelayMs)) {
      const detail = `${pod}'s heartbeat lists it after its VC's delete was reported with proof`;
      if (r.state === 'conflict') {
        if (!(r.conflictPods ?? []).includes(pod)) {
          keyChanges.push({ before: r, after: inConflict(r, [pod], now) });
          events.push({ at: now, type: 'conflict', pod, pubkeys: [pubkey], detail });
        }
        result.conflicts.push(pubkey);
        continue;
      }
      if (r.state === 'free') {
        await conflict(r, [], detail);
        continue;
      }
      if (
        (r.state === 'allocated' || r.state === 'cooling' || r.state === 'reported') &&
        r.pod !== undefined
      ) {
        await conflict(r, [r.pod], detail);
        continue;
      }
    }
    // Not the reporter's: a claim. A key the store has no record of may still be one the
    // mnemonic derives; the lookahead moves the next index past it, proof or not.
    if (!r && !rules.placeNow) {
      result.unknown.push(pubkey);
      continue;
    }
    const claimable =
      !r ||
      r.state === 'free' ||
      r.state === 'cooling' ||
      ((r.state === 'allocated' || r.state === 'reported') && r.pod !== undefined) ||
      (r.state === 'conflict' && !(r.conflictPods ?? []).includes(pod));
    if (!claimable) {
      if (r.state !== 'conflict') result.unknown.push(pubkey); // retired, in a deposit
      continue;
    }
    if (!rules.proven.has(pubkey)) {
      result.refused.push(pubkey);
      if (r && (r.state === 'free' || r.state === 'cooling')) holdable.push(pubkey);
      continue;
    }
    if (!r) await takeReported(undefined, pubkey);
    else if (r.state === 'conflict') {
      keyChanges.push({ before: r, after: inConflict(r, [pod], now) });
      result.conflicts.push(pubkey);
    } else if (r.state === 'cooling' && r.pod !== undefined && !rules.cooled(r))
      await conflict(r, [r.pod], `${r.pod} held it within the reuse delay`);
    else if (r.state === 'free' || r.state === 'cooling') await takeReported(r, pubkey);
    else if (r.pod !== undefined) await conflict(r, [r.pod], `${r.pod} holds it too`);
  }
  if (result.reclaimed.length > 0) {
    events.push({
      at: now,
      type: 'reassert',
      pod,
      pubkeys: result.reclaimed,
      detail: 'reported by a heartbeat',
    });
  }
  if (result.reported.length > 0) events.push(reportEvent(now, pod, result.reported));
  if (keyChanges.length > 0) tx.stage({ keys: keyChanges, pods: pods.changes(), events });
  return { result, holdable };
}

/**
 * The key left `pod` with proof at or after `after`: its VC's delete was reported and judged
 * proof (removal.ts), so it went free ('removed' from the pod) or to a move's destination
 * ('moved', after the 'leaving' that names the pod). Read from the key's own history.
 */
function leftWithProof(r: KeyRecord, pod: string, after: number): boolean {
  const history = r.history;
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i];
    if (e === undefined || e.at < after) return false;
    if (e.event === 'removed' && e.pod === pod) return true;
    if (e.event === 'moved') {
      for (let j = i - 1; j >= 0; j--) {
        const before = history[j];
        if (before?.event === 'leaving') {
          if (before.pod === pod) return true;
          break;
        }
      }
    }
  }
  return false;
}

function reportEvent(now: number, pod: string, pubkeys: string[]): NewAuditEvent {
  return {
    at: now,
    type: 'report',
    pod,
    pubkeys,
    detail: 'running, but unknown to the store: recorded as reported, never handed out',
  };
}

/** What a pod holds against --max-keys-per-pod: its keys, and those reported by it. */
export function podHolds(pod: PodRecord | undefined): number {
  return (pod?.keys.length ?? 0) + (pod?.reported?.length ?? 0);
}

const overLimit = (max: number) =>
  `runs it past --max-keys-per-pod (${max}): out of everyone's reach until an operator acts`;

/** What the second step of a heartbeat did with the keys the store had no record of. */
export interface PlacedReports {
  readonly reported: string[];
  readonly conflicts: string[];
  readonly refused: string[];
}

/**
 * Records keys a heartbeat reported that the store had no record of. `found` holds the
 * derivation index of those the mnemonic derives: the next index moves past them in the same
 * batch, proof or not (nobody may ever be handed that index again). A key is recorded as the
 * reporter's only with a proof (`proven`), and then a derived one keeps its secret. Past the
 * pod's --max-keys-per-pod it is refused: the store has no record of it, so it can never hand
 * it out, and a pod cannot fill the store with keys it made up. Without a proof nothing else
 * changes.
 */
export async function placeReportedIn(
  tx: Transaction,
  parts: NewKeyParts,
  now: number,
  pod: string,
  pubkeys: readonly string[],
  claims: { readonly found: ReadonlyMap<string, number>; readonly proven: ReadonlySet<string> },
  maxKeysPerPod: number,
): Promise<PlacedReports> {
  const { found, proven } = claims;
  const holder = await tx.getPod(pod);
  // Counted under the lock, from the record as it is now: other requests ran since step one.
  let room = maxKeysPerPod - podHolds(holder);
  const keys: KeyChange[] = [];
  const out: PlacedReports = { reported: [], conflicts: [], refused: [] };
  let next = tx.nextKeyIndex();
  const skipped: string[] = [];
  const skippedKeys: string[] = [];
  for (const pubkey of pubkeys) {
    if (await tx.getKey(pubkey)) continue; // placed meanwhile: the next heartbeat reconciles it
    const index = found.get(pubkey);
    const [derived] = index === undefined ? [] : await parts.keySource.make(1, index);
    const isDerived =
      index !== undefined && derived?.pubkey === pubkey && derived.path !== undefined;
    if (isDerived && index >= next) {
      skipped.push(`${next}..${index}`);
      skippedKeys.push(pubkey);
      next = index + 1;
    }
    if (!proven.has(pubkey) || room <= 0) {
      out.refused.push(pubkey);
      continue;
    }
    room--;
    // Recorded as the reporter's, never handed out: the store lost this key's story (who else
    // was handed it since), so it does not hand it to anyone, the reporter included.
    const record =
      isDerived && derived.path !== undefined
        ? reportedBy(pubkey, pod, now, {
            secret: parts.store.secrets.seal(derived.secretKey, pubkey),
            path: derived.path,
          })
        : reportedBy(pubkey, pod, now);
    keys.push({ after: record });
    out.reported.push(pubkey);
  }
  const events: NewAuditEvent[] = [];
  if (out.reported.length > 0) events.push(reportEvent(now, pod, out.reported));
  if (skipped.length > 0)
    events.push({
      at: now,
      type: 'skip',
      pod,
      pubkeys: skippedKeys,
      detail: `derivation indexes ${skipped.join(', ')} are held by a running pod: the next index is now ${next}`,
    });
  const pods =
    out.reported.length > 0
      ? [podChange(pod, holder, editPod(holder, { report: out.reported }, now))]
      : [];
  if (keys.length > 0 || next > tx.nextKeyIndex())
    tx.stage({
      keys,
      pods,
      events,
      ...(next > tx.nextKeyIndex() ? { nextKeyIndex: next } : {}),
    });
  return out;
}
