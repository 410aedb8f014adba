// A heartbeat reports the keys a pod actually runs. The store may have lost that view (restored
// from an older copy, say), so each reported key is reconciled (DESIGN.md "Safety rules"). A
// heartbeat claims a key for its reporter only where the store records the reporter as its
// holder; there is no proof of possession yet, so nothing else becomes the reporter's:
//   - held by this pod: nothing to do;
//   - cooling under this pod's name: it goes back to this pod if its stop was confirmed (a new
//     incarnation that kept its keystores), or if the pod's token names the very incarnation
//     that released it. Otherwise (a forced or unconfirmed release: the old container may be
//     the one beating) it stays cooling, and the reuse delay counts again from now: nobody, the
//     pod's new incarnation included, gets it while it is reported running;
//   - cooling under another pod's name within the reuse delay, or held by another pod: a
//     conflict. Two pods run it. It leaves both pods' lists and is never handed out again until
//     an operator resolves it (retires it);
//   - free, or cooled past the delay: recorded as `reported` by this pod, never handed out;
//   - not in the store at all: recorded as `reported` too. A key derived from the mnemonic is
//     first searched for among the indexes ahead, and the next index moves past it at once, so
//     that no other pod is ever handed that index.

import type { NewAuditEvent } from '../store/audit.js';
import type { KeyRecord, PodRecord } from '../store/records.js';
import type { KeyChange } from '../store/store.js';
import type { NewKeyParts } from './new-keys.js';
import type { Transaction } from './transaction.js';
import {
  editPod,
  handedTo,
  inConflict,
  type PodEdit,
  podChange,
  reportedBy,
  reportedRunning,
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
}

/** Pod records edited by one heartbeat, each from its state before. */
class PodEdits {
  private readonly edits = new Map<
    string,
    { before: PodRecord | undefined; after: PodRecord | undefined }
  >();

  constructor(
    private readonly tx: Transaction,
    private readonly now: number,
  ) {}

  async edit(name: string, edit: PodEdit): Promise<void> {
    let entry = this.edits.get(name);
    if (!entry) {
      const before = await this.tx.getPod(name);
      entry = { before, after: before };
      this.edits.set(name, entry);
    }
    entry.after = editPod(entry.after, edit, this.now);
  }

  changes() {
    return [...this.edits].map(([name, { before, after }]) => podChange(name, before, after));
  }
}

export async function heartbeatIn(
  tx: Transaction,
  now: number,
  pod: string,
  pubkeys: readonly string[],
  rules: HeartbeatRules,
): Promise<HeartbeatResult> {
  const result: HeartbeatResult = {
    reclaimed: [],
    conflicts: [],
    unknown: [],
    reported: [],
    stillCooling: [],
  };
  const holder = await tx.getPod(pod);
  const pods = new PodEdits(tx, now);
  const keyChanges: KeyChange[] = [];
  const events: NewAuditEvent[] = [];
  const conflict = async (r: KeyRecord, other: string) => {
    if (r.state === 'allocated') await pods.edit(other, { drop: [r.pubkey] });
    if (r.state === 'cooling') await pods.edit(other, { uncool: [r.pubkey] });
    keyChanges.push({ before: r, after: inConflict(r, [other, pod], now) });
    events.push({
      at: now,
      type: 'conflict',
      pod,
      pubkeys: [r.pubkey],
      detail: `${other} holds it too`,
    });
    result.conflicts.push(r.pubkey);
  };

  for (const pubkey of new Set(pubkeys)) {
    const r = await tx.getKey(pubkey);
    if (!r) {
      if (rules.placeNow) {
        keyChanges.push({ after: reportedBy(pubkey, pod, now) });
        result.reported.push(pubkey);
      } else result.unknown.push(pubkey);
      continue;
    }
    if ((r.state === 'allocated' || r.state === 'reported') && r.pod === pod) {
      if (r.state === 'allocated') rules.reasserted?.(pubkey);
      continue;
    }
    if (r.state === 'cooling' && r.pod === pod) {
      const sameIncarnation =
        rules.uid !== undefined &&
        r.uid === rules.uid &&
        (holder?.uid === undefined || holder.uid === rules.uid);
      if (r.stop === 'confirmed' || sameIncarnation) {
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
    if (r.state === 'cooling' && r.pod !== undefined && !rules.cooled(r)) {
      await conflict(r, r.pod);
      continue;
    }
    if (r.state === 'free' || r.state === 'cooling') {
      if (r.state === 'cooling' && r.pod !== undefined)
        await pods.edit(r.pod, { uncool: [pubkey] });
      keyChanges.push({ before: r, after: reportedRunning(r, pod, now) });
      result.reported.push(pubkey);
      continue;
    }
    if ((r.state === 'allocated' || r.state === 'reported') && r.pod !== undefined) {
      await conflict(r, r.pod);
      continue;
    }
    if (r.state === 'conflict') {
      if (!(r.conflictPods ?? []).includes(pod)) {
        keyChanges.push({ before: r, after: inConflict(r, [pod], now) });
        result.conflicts.push(pubkey);
      }
      continue;
    }
    result.unknown.push(pubkey);
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
  return result;
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

/**
 * Records keys a heartbeat reported that the store had no record of. `found` holds the
 * derivation index of those the mnemonic derives: their secret is kept, and the next index
 * moves past them in the same batch.
 */
export async function placeReportedIn(
  tx: Transaction,
  parts: NewKeyParts,
  now: number,
  pod: string,
  pubkeys: readonly string[],
  found: ReadonlyMap<string, number>,
): Promise<string[]> {
  const keys: KeyChange[] = [];
  let next = tx.nextKeyIndex();
  const skipped: string[] = [];
  for (const pubkey of pubkeys) {
    if (await tx.getKey(pubkey)) continue; // placed meanwhile: the next heartbeat reconciles it
    const index = found.get(pubkey);
    const [derived] = index === undefined ? [] : await parts.keySource.make(1, index);
    if (index !== undefined && derived?.pubkey === pubkey && derived.path !== undefined) {
      const secret = parts.store.secrets.seal(derived.secretKey, pubkey);
      keys.push({ after: reportedBy(pubkey, pod, now, { secret, path: derived.path }) });
      if (index >= next) {
        skipped.push(`${next}..${index}`);
        next = index + 1;
      }
    } else keys.push({ after: reportedBy(pubkey, pod, now) });
  }
  if (keys.length === 0) return [];
  const placed = keys.map((k) => k.after.pubkey);
  const events = [reportEvent(now, pod, placed)];
  if (skipped.length > 0)
    events.push({
      at: now,
      type: 'skip',
      pod,
      pubkeys: placed.filter((pk) => found.has(pk)),
      detail: `derivation indexes ${skipped.join(', ')} are held by a running pod: the next index is now ${next}`,
    });
  tx.stage({
    keys,
    pods: [],
    events,
    ...(next > tx.nextKeyIndex() ? { nextKeyIndex: next } : {}),
  });
  return placed;
}
