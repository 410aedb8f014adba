// What the conformance suite (conformance.ts) builds its changes from and compares stores by:
// only the store contract, so the same helpers serve every backend.
import type { StoreContract } from '../../src/store/contract.js';
import type { KeyRecord, PodRecord } from '../../src/store/records.js';

/** A store under test, with what the suite needs beyond the contract. */
export interface TestStore extends StoreContract {
  /**
   * Closes this store and opens the same data again. Absent for a backend that keeps nothing
   * past close: the persistence tests are skipped for it.
   */
  reopen?(): Promise<TestStore>;
  /** Closes this store, sets its stored schema version behind its back, and opens it again. */
  reopenAtSchema(version: number): Promise<TestStore>;
}

export function pubkeyOf(n: number): string {
  return `0x${n.toString(16).padStart(96, '0')}`;
}

export function freeKey(store: StoreContract, n: number, since: number): KeyRecord {
  const pubkey = pubkeyOf(n);
  return {
    pubkey,
    secret: store.secrets.seal(new Uint8Array(32).fill(n % 256), pubkey),
    state: 'free',
    since,
    createdAt: since,
    history: [{ at: since, event: 'created' }],
  };
}

export function coolingKey(store: StoreContract, n: number, since: number, pod: string) {
  const r: KeyRecord = { ...freeKey(store, n, since), state: 'cooling', pod };
  return r;
}

export function pod(keys: string[], cooling: string[] = [], since = 1): PodRecord {
  return { keys, cooling, since };
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Meta keys the suite writes; a snapshot reads them back. */
export const TEST_META = ['conformance-a', 'conformance-b'] as const;

/** Everything a store holds, read through the contract: equal snapshots, equal stores. */
export async function snapshot(store: StoreContract) {
  return {
    keys: await collect(store.keyRecords()),
    pods: await collect(store.pods()),
    unallocated: await store.indexEntries('unallocated'),
    cooling: await store.indexEntries('cooling'),
    counts: store.storedCounts(),
    nextKeyIndex: store.nextKeyIndex(),
    events: await store.events(0, 100_000),
    meta: await Promise.all(TEST_META.map((k) => store.getMeta(k))),
  };
}
