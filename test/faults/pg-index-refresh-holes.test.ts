// Found while writing the HA fault tests (issue 15, point 5): a server's store refreshes its
// next key index from the database every 2 s (StoreProbe's ping -> PgStore.refresh()), also
// while a group runs. When that refresh landed inside a group that derived a key, after another
// server committed more derivations from the same index, the group's change ended below the
// refreshed index and PgStore.commit refused it as INTERNAL ("the next key index may only
// grow"), a 500 for every request of the group. It is a conflict like any other: the change
// now says which index its derivations started from (Change.keyIndexBasis), and the group runs
// again from fresh reads, deriving past the indexes the other server took.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { checkStore } from '../../src/store/check.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { FakeClock, onCleanup, testKek } from '../helpers.js';
import { mnemonic } from '../support/allocator.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const bins = await findPostgres();

describe.skipIf(bins === undefined)('a refreshed next key index inside a group', () => {
  const cluster = bins ? usePostgres(bins) : () => undefined;

  async function newDatabase(name: string): Promise<string> {
    const url = new URL(cluster()?.url ?? '');
    const admin = new pg.Client({ connectionString: url.toString() });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    url.pathname = `/${name}`;
    return url.toString();
  }

  async function server(url: string, clock: FakeClock) {
    const store = await PgStore.open(url, { kek: testKek, poolSize: 2 });
    onCleanup(() => store.close());
    const group = GroupCommitter.of(store);
    const allocator = new Allocator({
      store,
      group,
      clock: clock.now,
      monotonic: clock.monotonic,
      keySource: mnemonic,
      config: { reuseDelayMs: 0, maxKeysPerPod: 8, maxTotalKeys: undefined },
    });
    return { store, group, allocator };
  }

  it('is a conflict: the group runs again and derives past the indexes the other server took', async () => {
    const url = await newDatabase('pkm_refresh_race');
    const clock = new FakeClock();
    const a = await server(url, clock);
    const b = await server(url, clock);

    // Server A's next group: an allocation deriving one key at index 0, then (still inside
    // the group, before its commit) server B commits 8 keys derived from index 0 too, and A's
    // readiness probe refreshes A's counters, as it does every 2 s.
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const busy = a.group.run(() => gate);
    const allocation = a.allocator.allocate('pod-a', 1);
    let fired = false;
    const meanwhile = a.group.run(async () => {
      if (fired) return;
      fired = true;
      await b.allocator.allocate('pod-b', 8);
      await a.store.refresh();
    });
    open();
    const [got] = await Promise.all([allocation, meanwhile, busy]);
    expect(got.keys.map((k) => k.path)).toEqual(['m/12381/3600/8/0/0']);
    expect(a.store.nextKeyIndex()).toBe(9);
    expect((await checkStore(a.store)).problems).toEqual([]);
    expect((await a.store.getPod('pod-b'))?.keys).toHaveLength(8);
  });
});
