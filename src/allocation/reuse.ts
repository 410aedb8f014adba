// A cooled key that moves to another pod: its previous holder's record lets go of it, and the
// audit log says where it came from.
import type { NewAuditEvent } from '../store/audit.js';
import type { PodChange } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';
import { editPod, podChange } from './transitions.js';

/** Reused cooling keys leave their previous holder's cooling list, in the same batch. */
export async function previousHolderChanges(
  tx: Transaction,
  pooled: readonly KeyRecord[],
  now: number,
): Promise<PodChange[]> {
  const byPod = new Map<string, Set<string>>();
  for (const r of pooled) {
    if (r.state !== 'cooling' || r.pod === undefined) continue;
    const set = byPod.get(r.pod) ?? new Set<string>();
    set.add(r.pubkey);
    byPod.set(r.pod, set);
  }
  const changes: PodChange[] = [];
  for (const [name, gone] of byPod) {
    const before = await tx.getPod(name);
    if (!before) throw tx.inconsistent(`cooling keys name pod ${name}, which has no record`);
    changes.push(podChange(name, before, editPod(before, { uncool: [...gone] }, now)));
  }
  return changes;
}

/** What an allocation did: the keys it handed out, and each cooled key that moved pods. */
export function allocationEvents(
  pod: string,
  at: number,
  given: readonly KeyRecord[],
  pooled: readonly KeyRecord[],
): NewAuditEvent[] {
  const events: NewAuditEvent[] = [
    { at, type: 'allocate', pod, pubkeys: given.map((r) => r.pubkey) },
  ];
  for (const r of pooled) {
    if (r.state === 'cooling' && r.pod !== undefined) {
      events.push({
        at,
        type: 'reuse',
        pod,
        pubkeys: [r.pubkey],
        detail: `from ${r.pod}, released at ${new Date(r.since).toISOString()}`,
      });
    }
  }
  return events;
}
