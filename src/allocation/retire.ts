// Retiring a key: it is never handed out again (exited, slashed, or by an operator's choice).
// A held or cooling key leaves its pod's lists in the same batch. Idempotent.
import { PkmError } from '../errors.js';
import type { PodChange } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';
import { editPod, podChange, retired } from './transitions.js';

export async function retireIn(
  tx: Transaction,
  now: number,
  pubkey: string,
  reason: string,
): Promise<KeyRecord> {
  const before = await tx.getKey(pubkey);
  if (!before) throw new PkmError('KEY_NOT_FOUND', `no key ${pubkey} in this store`);
  if (before.state === 'retired') return before;
  if (before.state === 'depositing') {
    throw new PkmError(
      'KEY_BUSY',
      `the deposit of ${pubkey} is in flight; retire it once it settles`,
      { retryAfter: 30 },
    );
  }
  const podChanges: PodChange[] = [];
  const holder = before.pod;
  if (holder !== undefined) {
    const pod = await tx.getPod(holder);
    if (pod)
      podChanges.push(
        podChange(
          holder,
          pod,
          editPod(pod, { drop: [pubkey], uncool: [pubkey], unreport: [pubkey] }, now),
        ),
      );
  }
  const after = retired(before, now);
  tx.stage({
    keys: [{ before, after }],
    pods: podChanges,
    events: [
      {
        at: now,
        type: 'retire',
        pubkeys: [pubkey],
        ...(holder ? { pod: holder } : {}),
        detail: reason,
      },
    ],
  });
  return after;
}
