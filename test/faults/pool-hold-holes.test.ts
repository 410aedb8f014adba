// A hole older than the group's kept reads (commit 0d8dc59, a claim's hold kept in the key's
// record on a shared store), found while testing them: an allocation at a server that did not
// hear the claim reads the `n` oldest free keys, drops the held ones after the read, and makes
// new keys for the shortfall while younger free keys sit unused (in send mode, a 32 ETH deposit
// each). Real PostgreSQL, two PgStores on one database.
import { describe, expect, it } from 'vitest';
import { type AllocationOutcome, Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { FakeClock, onCleanup, testKek } from '../helpers.js';
import { freeKey } from '../store/conformance-support.js';
import { newDatabase } from '../support/pg-databases.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const bins = await findPostgres();

describe.skipIf(bins === undefined)('a claim held in the record: holes', () => {
  const server = bins ? usePostgres(bins) : () => undefined;
  let made = 0;
  const freshDatabase = (): Promise<string> => {
    const cluster = server();
    if (!cluster) throw new Error('PostgreSQL is not started');
    return newDatabase(cluster, `pkm_pool_hold_${++made}`);
  };

  async function openServer(url: string): Promise<PgStore> {
    const store = await PgStore.open(url, { kek: testKek, poolSize: 4, presence: 'server' });
    onCleanup(() => store.close());
    return store;
  }

  function allocatorOver(store: PgStore, outcomes: AllocationOutcome[]): Allocator {
    return new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: store.clock,
      monotonic: new FakeClock().monotonic,
      keySource: randomKeySource,
      config: { reuseDelayMs: 0, maxKeysPerPod: 8, maxTotalKeys: undefined },
      onAllocated: (o) => outcomes.push(o),
    });
  }

  it('an allocation at another server passes over a held free key to a younger free one, not to a new key', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const now = storeA.clock();
    const oldest = freeKey(storeA, 1, now - 2_000);
    const younger = freeKey(storeA, 2, now - 1_000);
    await storeA.commit({ keys: [{ after: oldest }, { after: younger }], pods: [] });
    const a = allocatorOver(storeA, []);
    const outcomes: AllocationOutcome[] = [];
    const b = allocatorOver(storeB, outcomes);
    // Pod h claims the oldest free key at A without a proof: held from every pod, at every server.
    const heard = await a.heartbeat('h', [oldest.pubkey]);
    expect(heard.refused).toEqual([oldest.pubkey]);
    expect((await storeB.getKey(oldest.pubkey))?.heldUntil).toBeGreaterThan(now);
    const got = (await b.allocate('p', 1)).keys.map((k) => k.pubkey);
    expect({ got, outcomes }).toEqual({
      got: [younger.pubkey],
      outcomes: [{ pod: 'p', held: 0, reclaimed: 0, reused: 1, created: 0 }],
    });
  });
});
