// A restored store cannot vouch for its keys (DESIGN.md "Safety rules"): after the backup they
// may have gone to other pods, been retired, or gained slashing protection.
import { MetaKey } from '../store/buckets.js';
import type { StoreContract } from '../store/contract.js';
import { GroupCommitter } from './group-commit.js';
import { fenced } from './transitions.js';

/**
 * Every free or cooling key is fenced from now: nobody gets it before the reuse delay and the
 * liveness gate. Held keys stay with the pods the backup names (a running pod without an agent
 * must not lose them), but the store is marked restored: its next start hands no key out again,
 * not even to its holder, before the holder re-asserts it (a heartbeat) or a full reuse delay
 * has passed, and it moves and derives nothing meanwhile (allocator.ts). Returns the keys fenced.
 */
export async function fenceRestored(store: StoreContract, now: number): Promise<number> {
  const group = GroupCommitter.of(store);
  let pubkeys: string[] = [];
  let count = 0;
  const flush = async (last: boolean) => {
    const batch = pubkeys;
    pubkeys = [];
    await group.run(async (tx) => {
      const records = await tx.getKeys(batch);
      tx.stage({
        keys: records.map((r) => ({ before: r, after: fenced(r, now) })),
        pods: [],
        events:
          batch.length > 0
            ? [{ at: now, type: 'fence', pubkeys: batch, detail: 'restored from a backup' }]
            : [],
        ...(last ? { meta: [[MetaKey.restoredAt, String(now)] as const] } : {}),
      });
    });
    count += batch.length;
  };
  for await (const r of store.keyRecords()) {
    if (r.state !== 'free' && r.state !== 'cooling') continue;
    pubkeys.push(r.pubkey);
    if (pubkeys.length === 1000) await flush(false);
  }
  await flush(true);
  return count;
}
