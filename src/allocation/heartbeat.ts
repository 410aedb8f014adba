// A heartbeat reports the keys a pod actually runs. The store may have lost that view (restored
// from an older copy, say), so each reported key is reconciled:
//   - held by this pod: nothing to do;
//   - free or cooling: it goes back to this pod, whoever released it (never to a third pod);
//   - held by another pod: a conflict. Two pods run it. The key leaves both pods' lists and is
//     never handed out again until an operator resolves it (retires it).

import type { NewAuditEvent } from '../store/audit.js';
import type { KeyRecord, PodRecord } from '../store/records.js';
import { withEvent } from '../store/records.js';
import type { KeyChange, PodChange } from '../store/store.js';
import type { Transaction } from './transaction.js';

export interface HeartbeatResult {
  /** Keys the store thought free or cooling, now this pod's again. */
  readonly reclaimed: string[];
  /** Keys another pod holds as well: now in state conflict. */
  readonly conflicts: string[];
  /** Keys this store does not know, or will not give (retired, in a deposit). */
  readonly unknown: string[];
}

export async function heartbeatIn(
  tx: Transaction,
  now: number,
  pod: string,
  pubkeys: readonly string[],
): Promise<HeartbeatResult> {
  const result: HeartbeatResult = { reclaimed: [], conflicts: [], unknown: [] };
  const pods = new Map<string, { before: PodRecord | undefined; after: PodRecord }>();
  const podRecord = async (name: string) => {
    let entry = pods.get(name);
    if (!entry) {
      const before = await tx.getPod(name);
      entry = { before, after: before ?? { keys: [], cooling: [], since: now } };
      pods.set(name, entry);
    }
    return entry;
  };
  const keyChanges: KeyChange[] = [];
  const events: NewAuditEvent[] = [];

  for (const pubkey of new Set(pubkeys)) {
    const r = await tx.getKey(pubkey);
    if (!r) {
      result.unknown.push(pubkey);
      continue;
    }
    if (r.state === 'allocated' && r.pod === pod) continue;
    if (r.state === 'free' || r.state === 'cooling') {
      if (r.state === 'cooling' && r.pod !== undefined) {
        const holder = await podRecord(r.pod);
        holder.after = {
          ...holder.after,
          cooling: holder.after.cooling.filter((k) => k !== pubkey),
          since: now,
        };
      }
      const mine = await podRecord(pod);
      mine.after = { ...mine.after, keys: [...mine.after.keys, pubkey], since: now };
      keyChanges.push(
        change(r, {
          ...r,
          state: 'allocated',
          pod,
          since: now,
          history: withEvent(r.history, { at: now, event: 'reclaimed', pod }),
        }),
      );
      result.reclaimed.push(pubkey);
      continue;
    }
    if (r.state === 'allocated' && r.pod !== undefined) {
      const other = await podRecord(r.pod);
      other.after = {
        ...other.after,
        keys: other.after.keys.filter((k) => k !== pubkey),
        since: now,
      };
      const { pod: _pod, ...rest } = r;
      keyChanges.push(
        change(r, { ...rest, state: 'conflict', since: now, conflictPods: [r.pod, pod] }),
      );
      events.push({
        at: now,
        type: 'conflict',
        pod,
        pubkeys: [pubkey],
        detail: `${r.pod} holds it too`,
      });
      result.conflicts.push(pubkey);
      continue;
    }
    if (r.state === 'conflict' && !(r.conflictPods ?? []).includes(pod)) {
      keyChanges.push(change(r, { ...r, conflictPods: [...(r.conflictPods ?? []), pod] }));
      result.conflicts.push(pubkey);
      continue;
    }
    if (r.state !== 'conflict') result.unknown.push(pubkey);
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
  const podChanges: PodChange[] = [...pods].map(([name, { before, after }]) => {
    const empty = after.keys.length === 0 && after.cooling.length === 0;
    return { name, ...(before ? { before } : {}), ...(empty ? {} : { after }) };
  });
  if (keyChanges.length > 0) tx.stage({ keys: keyChanges, pods: podChanges, events });
  return result;
}

function change(before: KeyRecord, after: KeyRecord): KeyChange {
  return { before, after };
}
