// Fills a store for the benchmarks through the store's own commit path (LevelDB or PostgreSQL).
import { randomBytes } from 'node:crypto';
import { randomKey } from '../src/keys/bls.js';
import type { KeyChange, PodChange, StoreContract } from '../src/store/contract.js';
import type { KeyRecord } from '../src/store/records.js';

/** What filling needs of a store: its commit path and its secrets' sealing. */
type Fillable = Pick<StoreContract, 'commit' | 'secrets'>;

/** `count` real random BLS keys, free in the pool. */
export async function fillFreeKeys(store: Fillable, count: number): Promise<void> {
  for (let done = 0; done < count; done += 500) {
    const keys: KeyChange[] = [];
    for (let i = done; i < Math.min(count, done + 500); i++) {
      const k = randomKey();
      keys.push({ after: record(store, k.pubkey, k.secretKey, i) });
    }
    await store.commit({ keys, pods: [] });
  }
}

/**
 * `pods` pods holding `perPod` keys each. The keys are random bytes shaped like keys: the page
 * and the JSON listing never touch key material, and 100,000 real keys take minutes to make.
 */
export async function fillAllocatedPods(
  store: Fillable,
  pods: number,
  perPod: number,
): Promise<void> {
  for (let done = 0; done < pods; done += 100) {
    const keys: KeyChange[] = [];
    const podChanges: PodChange[] = [];
    for (let p = done; p < Math.min(pods, done + 100); p++) {
      const name = `validator-${String(p).padStart(5, '0')}`;
      const pubkeys: string[] = [];
      for (let k = 0; k < perPod; k++) {
        const pubkey = `0x${randomBytes(48).toString('hex')}`;
        pubkeys.push(pubkey);
        keys.push({
          after: { ...record(store, pubkey, randomBytes(32), p), state: 'allocated', pod: name },
        });
      }
      podChanges.push({ name, after: { keys: pubkeys, cooling: [], since: p } });
    }
    await store.commit({ keys, pods: podChanges });
  }
}

function record(store: Fillable, pubkey: string, secret: Uint8Array, since: number): KeyRecord {
  return {
    pubkey,
    secret: store.secrets.seal(secret, pubkey),
    state: 'free',
    since,
    createdAt: since,
    history: [{ at: since, event: 'created' }],
  };
}
