// Small operations the group committer's tests run inside a Transaction: a pod takes the oldest
// free key, or gives its keys back (they cool), each staged as the allocator would stage it.
import type { Transaction } from '../../src/allocation/transaction.js';
import { editPod, handedTo, podChange, released } from '../../src/allocation/transitions.js';

const NOW = 1_800_000_000_000;

/** `pod` takes the oldest free key, as read in `tx`; returns it. */
export async function takeOne(tx: Transaction, pod: string): Promise<string> {
  const [oldest] = await tx.oldest('unallocated', 1);
  const before = oldest && (await tx.getKey(oldest.pubkey));
  if (!before) throw new Error('pool empty');
  const podBefore = await tx.getPod(pod);
  tx.stage({
    keys: [{ before, after: handedTo(before, pod, NOW, 'allocated') }],
    pods: [podChange(pod, podBefore, editPod(podBefore, { hold: [before.pubkey] }, NOW))],
  });
  return before.pubkey;
}

/** `pod` releases its keys: they cool, and join the cooling pool. Returns them. */
export async function giveBack(tx: Transaction, pod: string): Promise<string[]> {
  const podBefore = await tx.getPod(pod);
  if (!podBefore || podBefore.keys.length === 0) return [];
  const keys = await tx.getKeys(podBefore.keys);
  const now = NOW + 1;
  tx.stage({
    keys: keys.map((before) => ({
      before,
      after: released(before, pod, now, 'confirmed', undefined),
    })),
    pods: [
      podChange(
        pod,
        podBefore,
        editPod(podBefore, { drop: podBefore.keys, cool: podBefore.keys }, now),
      ),
    ],
  });
  return [...podBefore.keys];
}
