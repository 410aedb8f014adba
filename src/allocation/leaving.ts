// Taking keys back from a running pod (issue 16, point 3): a smaller count, a move, a rebalance.
// A key taken back is only marked `leaving` (transitions.ts leavingFor): its pod still holds
// it, for its VC may still run it, and nothing else may have it until the pod's agent reports
// it deleted from the VC (removal.ts). So a crash at any point leaves every key with exactly
// one pod, whose VC holds it or not.
import { PkmError } from '../errors.js';
import type { NewAuditEvent } from '../store/audit.js';
import type { KeyRecord, PodRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';
import { leavingFor, staying } from './transitions.js';

/** A pod's keys as its agent is to see them. */
export interface PodKeys {
  readonly record: PodRecord | undefined;
  /** Held and not leaving: its VC is to run them. In hand-out order. */
  readonly assigned: KeyRecord[];
  /** Held and leaving: its VC is to drop them. */
  readonly leaving: KeyRecord[];
}

/**
 * A pod's keys as a reader outside the commit lock sees them (the agent's assignment): a key is
 * the pod's when its own record says so. A commit between the two reads (a release, a move)
 * makes the pod's list and a key's record disagree for a moment: the record wins.
 */
export async function podKeysNow(
  reads: Pick<Transaction, 'getPod' | 'getKeys'>,
  pod: string,
): Promise<PodKeys> {
  const record = await reads.getPod(pod);
  const records = (await reads.getKeys(record?.keys ?? [])).filter(
    (r) => r.state === 'allocated' && r.pod === pod,
  );
  return {
    record,
    assigned: records.filter((r) => r.leaving === undefined),
    leaving: records.filter((r) => r.leaving !== undefined),
  };
}

/** Reads a pod's keys, each checked to be the pod's (a mismatch is the store's to explain). */
export async function podKeysIn(
  tx: Pick<Transaction, 'getPod' | 'getKeys' | 'inconsistent'>,
  pod: string,
): Promise<PodKeys> {
  const record = await tx.getPod(pod);
  const records = await tx.getKeys(record?.keys ?? []);
  for (const r of records)
    if (r.state !== 'allocated' || r.pod !== pod)
      throw tx.inconsistent(`pod ${pod} lists ${r.pubkey}, but the key is ${r.state}`);
  return {
    record,
    assigned: records.filter((r) => r.leaving === undefined),
    leaving: records.filter((r) => r.leaving !== undefined),
  };
}

/**
 * Marks the `n` keys the pod got last (of those not leaving yet) as leaving, for pod `to` or
 * for the pool; returns their pubkeys. Refused (COUNT_MISMATCH, nothing staged) when the pod
 * has fewer.
 */
export async function takeBackIn(
  tx: Transaction,
  now: number,
  pod: string,
  n: number,
  to: string | undefined,
): Promise<string[]> {
  if (n <= 0) return [];
  const { assigned } = await podKeysIn(tx, pod);
  if (assigned.length < n)
    throw new PkmError(
      'COUNT_MISMATCH',
      `pod ${pod} has ${assigned.length} keys that are not leaving already, fewer than ${n}`,
    );
  const chosen = assigned.slice(-n);
  const event: NewAuditEvent = {
    at: now,
    type: 'leave',
    pod,
    pubkeys: chosen.map((r) => r.pubkey),
    detail: to === undefined ? 'a smaller count: to the pool' : `moving to ${to}`,
  };
  tx.stage({
    // Only the key records change: the pod still holds them. On a store several servers share,
    // their before-images make a concurrent change of the same keys refuse one of the two.
    keys: chosen.map((r) => ({ before: r, after: leavingFor(r, now, to) })),
    pods: [],
    events: [event],
  });
  return event.pubkeys;
}

/**
 * Takes back up to `n` of the pod's leaving keys that go to the pool (not those a move sends
 * to another pod): they stay the pod's, and its agent imports them again if its VC dropped
 * them meanwhile. Returns their pubkeys.
 */
export async function keepIn(
  tx: Transaction,
  now: number,
  pod: string,
  n: number,
): Promise<string[]> {
  if (n <= 0) return [];
  const { leaving } = await podKeysIn(tx, pod);
  const kept = leaving.filter((r) => r.leaving?.to === undefined).slice(0, n);
  if (kept.length === 0) return [];
  tx.stage({
    keys: kept.map((r) => ({ before: r, after: staying(r) })),
    pods: [],
    events: [
      {
        at: now,
        type: 'leave',
        pod,
        pubkeys: kept.map((r) => r.pubkey),
        detail: 'a larger count again: no longer leaving',
      },
    ],
  });
  return kept.map((r) => r.pubkey);
}
