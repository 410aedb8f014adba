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

/**
 * `pods` earlier pods that held `perPod` real keys each and released them at `releasedAt`
 * (one ms apart, pod by pod): the keys cool, each pod record keeps its cooling list, as
 * release.ts leaves them. Once the reuse delay has passed, allocations recycle them and update
 * their previous holders' records in the same batch (reuse.ts).
 */
export async function fillReleasedKeys(
  store: Fillable,
  pods: number,
  perPod: number,
  releasedAt: number,
): Promise<void> {
  const createdAt = releasedAt - 60_000;
  for (let done = 0; done < pods; done += 100) {
    const keys: KeyChange[] = [];
    const podChanges: PodChange[] = [];
    for (let p = done; p < Math.min(pods, done + 100); p++) {
      const name = `released-${String(p).padStart(6, '0')}`;
      const since = releasedAt + p;
      const pubkeys: string[] = [];
      for (let k = 0; k < perPod; k++) {
        const key = randomKey();
        pubkeys.push(key.pubkey);
        const base = record(store, key.pubkey, key.secretKey, createdAt);
        keys.push({
          after: {
            ...base,
            state: 'cooling',
            pod: name,
            stop: 'confirmed',
            since,
            history: [
              ...base.history,
              { at: createdAt, event: 'allocated', pod: name },
              { at: since, event: 'released', pod: name },
            ],
          },
        });
      }
      podChanges.push({ name, after: { keys: [], cooling: pubkeys, since } });
    }
    await store.commit({ keys, pods: podChanges });
  }
}
