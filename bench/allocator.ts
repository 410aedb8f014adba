// bench/allocator: allocations through the allocator and the group committer on a real LevelDB,
// in process (no HTTP), synced against unsynced in the same run. This is the part of an
// allocation that syncing touches (DESIGN.md, "Store": every change is synced before it is
// acknowledged); bench/allocate measures the whole server over HTTP, where this machine's two
// cores, shared with the load generator, cap even a bare express server near 1,000 req/s.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allocator } from '../src/allocation/allocator.js';
import { GroupCommitter } from '../src/allocation/group-commit.js';
import { systemClock, systemMonotonic } from '../src/clock.js';
import { randomKeySource } from '../src/keys/source.js';
import { Store } from '../src/store/store.js';
import { fillFreeKeys } from './fill.js';
import { report } from './lib.js';

const CONCURRENCY = 50;
const PODS = 2000;
const KEYS_PER_POD = 4;
const ROUNDS = 3;
const TARGET_PER_S = 1000;
const KEK = async () => Buffer.alloc(32, 0x42);

/** Allocations per second with `CONCURRENCY` in flight, each a new pod taking free keys. */
async function run(sync: boolean): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-allocator-'));
  try {
    const store = await Store.open(dir, { kek: KEK, sync });
    await fillFreeKeys(store, PODS * KEYS_PER_POD);
    const allocator = new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: systemClock,
      monotonic: systemMonotonic,
      keySource: randomKeySource,
      config: { reuseDelayMs: 20 * 60_000, maxKeysPerPod: 64, maxTotalKeys: undefined },
    });
    let next = 0;
    const worker = async () => {
      while (next < PODS) await allocator.allocate(`validator-${next++}`, KEYS_PER_POD);
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const perSecond = PODS / ((performance.now() - start) / 1000);
    await store.close();
    return perSecond;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchAllocator(): Promise<void> {
  const synced: number[] = [];
  const unsynced: number[] = [];
  // Alternate, so both see the same noise.
  for (let round = 0; round < ROUNDS; round++) {
    unsynced.push(await run(false));
    synced.push(await run(true));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const s = median(synced);
  const u = median(unsynced);
  report({
    name: 'allocator.allocations_per_s',
    value: Math.round(s),
    unit: 'alloc/s',
    baseline: Math.round(u),
    ratio: Math.round((s / u) * 100) / 100,
    target: `>= ${TARGET_PER_S} alloc/s synced at concurrency ${CONCURRENCY}: ${s >= TARGET_PER_S ? 'met' : 'NOT met'}`,
  });
}
