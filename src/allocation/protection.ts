// Slashing protection with the keys (EIP-3076): uploads merged into each key, and what a pod
// gets with its keys, with a fence for keys that were held before.
import { PkmError } from '../errors.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Allocation, BeaconChain } from './allocator.js';
import type { Clock } from './clock.js';
import { fenceAt, type Interchange, merge, summarise } from './interchange.js';
import type { Transaction } from './transaction.js';
import { withProtection } from './transitions.js';

export interface ProtectionDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly beacon?: BeaconChain;
}

/**
 * Stores an interchange for a pod's keys, merged with what each key carries. Every pubkey must
 * be one the pod holds (or released and still cooling), and the genesis_validators_root must
 * be the network's (or that of the uploads before).
 */
export async function uploadProtectionIn(
  tx: Transaction,
  deps: ProtectionDeps,
  pod: string,
  interchange: Interchange,
): Promise<string[]> {
  const summary = summarise(interchange);
  const gvr = interchange.metadata.genesis_validators_root.toLowerCase();
  const expected =
    deps.beacon?.genesisValidatorsRoot ?? (await tx.getMeta(MetaKey.genesisValidatorsRoot));
  if (expected !== undefined && expected.toLowerCase() !== gvr) {
    throw new PkmError(
      'INTERCHANGE_MISMATCH',
      `genesis_validators_root ${gvr} is not this network's (${expected})`,
    );
  }
  const podRecord = await tx.getPod(pod);
  const held = new Set([...(podRecord?.keys ?? []), ...(podRecord?.cooling ?? [])]);
  const foreign = [...summary.keys()].filter((pk) => !held.has(pk));
  if (foreign.length > 0) {
    throw new PkmError('INTERCHANGE_MISMATCH', `pod ${pod} does not hold ${foreign.join(', ')}`);
  }
  const records = await tx.getKeys([...summary.keys()]);
  const now = deps.clock();
  tx.stage({
    keys: records.map((before) => ({
      before,
      after: withProtection(
        before,
        merge(before.protection ?? {}, summary.get(before.pubkey) ?? {}),
      ),
    })),
    pods: [],
    events: [{ at: now, type: 'protection', pod, pubkeys: records.map((r) => r.pubkey) }],
    ...(expected === undefined ? { meta: [[MetaKey.genesisValidatorsRoot, gvr] as const] } : {}),
  });
  return records.map((r) => r.pubkey);
}

/**
 * The keys as the pod gets them. A key that was held before (recycled) also carries a fence at
 * the current slot when the chain's genesis is known: whatever its old holder signed, the new
 * one cannot sign again. Uploaded protection and the fence merge to the stricter of both.
 */
export function handOut(
  deps: ProtectionDeps,
  pod: string,
  records: readonly KeyRecord[],
  genesisValidatorsRoot: string | undefined,
): Allocation {
  const { secrets } = deps.store;
  const genesis = deps.beacon?.genesisTime;
  const now = deps.clock();
  return {
    pod,
    ...(genesisValidatorsRoot === undefined ? {} : { genesisValidatorsRoot }),
    keys: records.map((r) => {
      // Released or fenced (a forced release, a restore): some pod may have signed with it.
      const recycled = r.history.some((e) => e.event === 'released' || e.event === 'fenced');
      const fence = recycled && genesis !== undefined ? fenceAt(now, genesis) : undefined;
      const protection = r.protection || fence ? merge(r.protection ?? {}, fence ?? {}) : undefined;
      if (r.secret === undefined)
        throw new PkmError('STORE_CORRUPT', `key ${r.pubkey} has no secret to hand out`);
      return {
        pubkey: r.pubkey,
        secretKey: secrets.open(r.secret, r.pubkey),
        ...(r.path === undefined ? {} : { path: r.path }),
        ...(protection ? { protection } : {}),
      };
    }),
  };
}
