import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { checkStore } from '../../src/store/check.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { FakeClock, onCleanup, testKek } from '../helpers.js';
import { mnemonic } from '../support/allocator.js';
import { newDatabase as makeDatabase } from '../support/pg-databases.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const bins = await findPostgres();

describe.skipIf(bins === undefined)('a refreshed next key index inside a group', () => {
  const cluster = bins ? usePostgres(bins) : () => undefined;
  const newDatabase = (name: string): Promise<string> => {
    const started = cluster();
    if (!started) throw new Error('PostgreSQL is not started');
    return makeDatabase(started, name);
  };

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
