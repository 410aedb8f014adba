// DELETE /eth/v1/keystores over the pool (specs/keymanager-APIs/apis/local_keystores.yaml and
// flows/README.md "Delete"): a key leaves the pool by being retired, which keeps its record and
// its slashing protection (the spec: DELETE "must never delete the slashing protection data").
// `deleted` tells the caller the key can sign nowhere through pkm any more, so it may be started
// elsewhere with the protection returned: pkm says so only when it could itself hand the key to
// a new pod now. A key a pod holds is never taken from under it (`error`), and neither is a
// cooling key whose last holder may still run it; an `error` changes nothing.
import { toPkmError } from '../errors.js';
import type { KeyRecord } from '../store/records.js';
import { fenceAt, merge, type Protection } from './interchange.js';
import { retireIn } from './retire.js';
import type { Transaction } from './transaction.js';

export type DeleteStatus = 'deleted' | 'not_active' | 'not_found' | 'error';

export interface DeleteOutcome {
  readonly pubkey: string;
  readonly status: DeleteStatus;
  readonly message?: string;
  /** deleted and not_active: the record as retired, whose protection goes back. */
  readonly record?: KeyRecord;
}

export interface DeleteRules {
  readonly now: number;
  /**
   * Why a free or cooling key may not leave yet (held back from every pod, the resync window or
   * a restore's hold, its reuse delay, the liveness gate); undefined when it may. The same rule
   * as a hand-off to another pod (DESIGN.md "Key lifecycle"): `deleted` says it may start
   * elsewhere now.
   */
  readonly poolHold: (r: KeyRecord) => string | undefined;
  /**
   * Why no protection can be exported (no genesis_validators_root known): then nothing is
   * retired, and every key that would have been deleted or not_active is an `error` (the spec's
   * "export fails" case, flows/README.md step 3).
   */
  readonly noExport?: string | undefined;
}

/** Why no pod's key may be deleted, or undefined when no pod holds or runs it. */
function heldBy(r: KeyRecord): string | undefined {
  if (r.state === 'allocated' || r.state === 'reported')
    return `held by pod ${r.pod ?? '?'}: release it first (DELETE /v1/pods/{pod}/keys)`;
  if (r.state === 'conflict')
    return `run by pods ${(r.conflictPods ?? []).join(', ')} (conflict): resolve that first`;
  return undefined;
}

/** Retires each key no pod holds, in order; every outcome is answered, nothing is thrown. */
export async function deleteKeysIn(
  tx: Transaction,
  rules: DeleteRules,
  pubkeys: readonly string[],
): Promise<DeleteOutcome[]> {
  const out: DeleteOutcome[] = [];
  for (const pubkey of pubkeys) {
    const before = await tx.getKey(pubkey);
    if (before === undefined) {
      out.push({ pubkey, status: 'not_found' });
      continue;
    }
    // Already out of the pool: its protection is still kept, and returned (flows/README.md).
    if (before.state === 'retired') {
      if (rules.noExport !== undefined)
        out.push({ pubkey, status: 'error', message: rules.noExport });
      else out.push({ pubkey, status: 'not_active', record: before });
      continue;
    }
    const inPool = before.state === 'free' || before.state === 'cooling';
    const why = heldBy(before) ?? (inPool ? rules.poolHold(before) : undefined);
    if (why !== undefined || rules.noExport !== undefined) {
      out.push({ pubkey, status: 'error', message: why ?? rules.noExport ?? '' });
      continue;
    }
    try {
      const after = await retireIn(tx, rules.now, pubkey, 'deleted through the Keymanager API');
      out.push({ pubkey, status: 'deleted', record: after });
    } catch (err) {
      // A deposit in flight (KEY_BUSY); retireIn stages nothing before it throws.
      out.push({ pubkey, status: 'error', message: toPkmError(err).message });
    }
  }
  return out;
}

/**
 * The protection a deleted key leaves with: what was uploaded for it and, when the chain's
 * genesis is known, a fence at the current slot, as a hand-off to a new pod carries
 * (protection.ts handOut). Every key gets the fence: a pod may have signed with it after its
 * last upload (a key retired from under its pod has no release in its history), and for a key
 * that never signed a fence at the current slot forbids nothing it could want. Never below what
 * was uploaded.
 */
export function exportedProtection(
  r: KeyRecord,
  nowMs: number,
  genesisTime: number | undefined,
): Protection {
  const fence = genesisTime !== undefined ? fenceAt(nowMs, genesisTime) : {};
  return merge(r.protection ?? {}, fence);
}
