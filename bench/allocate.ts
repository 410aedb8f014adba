// bench/allocate: allocation throughput and latency of the real server over HTTP, against the
// same server with unsynced commits (what syncing costs: DESIGN.md, "Store", every change is
// synced before it is acknowledged) and a floor (bare express + level, one equivalent unsynced
// batch per request), all measured in the same run.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kekLoader } from '../src/store/encryption.js';
import { Store } from '../src/store/store.js';
import { fillAllocatedPods, fillFreeKeys } from './fill.js';
import { type ChildServer, type LoadResult, load, report, spawnServer, timeGet } from './lib.js';

const PODS = 2000;
const KEYS_PER_POD = 4;
const CONCURRENCY = 50;
const WARMUP = 1000;
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const FLOOR = new URL('./floor-server.ts', import.meta.url).pathname;
const UNSYNCED = new URL('./unsynced-server.ts', import.meta.url).pathname;
/** Synced allocations per second that `pkm server` must reach at CONCURRENCY. */
const TARGET_PER_S = 1000;
const body = JSON.stringify({ count: KEYS_PER_POD });

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A run, with the CPU time the server's main thread spent per allocation. */
type Run = LoadResult & { readonly mainThreadUsPerRequest: number };

/**
 * Nanoseconds the process's main thread has run (Linux schedstat). JavaScript runs on that one
 * thread, so 1,000 allocations/s need at most 1,000 us of it each, whatever the other threads do.
 */
async function mainThreadNs(pid: number | undefined): Promise<number> {
  const text = await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8');
  return Number(text.split(' ')[0]);
}

/** Warms a server up on other pods, so both servers are measured hot, then runs the load. */
async function measure(server: ChildServer): Promise<Run> {
  try {
    const warmup = JSON.stringify({ count: 1 });
    await load(server.url, (i) => `/v1/pods/warmup-${i}/keys`, warmup, WARMUP, CONCURRENCY);
    const before = await mainThreadNs(server.proc.pid);
    const result = await load(
      server.url,
      (i) => `/v1/pods/validator-${i}/keys`,
      body,
      PODS,
      CONCURRENCY,
    );
    const used = (await mainThreadNs(server.proc.pid)) - before;
    return { ...result, mainThreadUsPerRequest: used / 1000 / PODS };
  } finally {
    await server.stop();
  }
}

/** `pkm server`, or (unsynced) the same built server with unsynced commits. */
async function allocationRun(dir: string, unsynced: boolean): Promise<Run> {
  const store = await Store.open(dir, { kek: kekLoader(dir) });
  // Enough free keys for the warm-up and the run: the run measures allocation from the pool.
  await fillFreeKeys(store, WARMUP + PODS * KEYS_PER_POD);
  await store.close();
  const flags = ['--data-dir', dir, '--listen', '127.0.0.1:0'];
  return measure(
    await spawnServer(
      unsynced ? ['--import', 'tsx', UNSYNCED, ...flags] : [CLI, 'server', ...flags],
    ),
  );
}

async function floorRun(dir: string): Promise<Run> {
  return measure(await spawnServer(['--import', 'tsx', FLOOR, dir]));
}

const ROUNDS = 3;

/** The run with the median throughput: the machine is noisy, and rounds alternate. */
function median(runs: Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.perSecond - b.perSecond);
  const mid = sorted[Math.floor(sorted.length / 2)];
  if (!mid) throw new Error('no runs to take a median of');
  return mid;
}

export async function benchAllocate(): Promise<void> {
  const floors: Run[] = [];
  const reals: Run[] = [];
  const unsynceds: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    floors.push(await withDir(floorRun));
    reals.push(await withDir((dir) => allocationRun(dir, false)));
    unsynceds.push(await withDir((dir) => allocationRun(dir, true)));
  }
  const floor = median(floors);
  const real = median(reals);
  const unsynced = median(unsynceds);
  report({ name: 'floor.allocations_per_s', value: round(floor.perSecond), unit: 'req/s' });
  // Unsynced, like the floor: what the server's own work costs.
  report({
    name: 'allocate.unsynced.allocations_per_s',
    value: round(unsynced.perSecond),
    unit: 'req/s',
    baseline: round(floor.perSecond),
    ratio: round(unsynced.perSecond / floor.perSecond, 2),
    target: 'ratio >= 0.5',
  });
  // pkm server as it runs: synced, against the same server unsynced.
  report({
    name: 'allocate.allocations_per_s',
    value: round(real.perSecond),
    unit: 'req/s',
    baseline: round(unsynced.perSecond),
    ratio: round(real.perSecond / unsynced.perSecond, 2),
    target: `>= ${TARGET_PER_S} req/s synced at concurrency ${CONCURRENCY}: ${real.perSecond >= TARGET_PER_S ? 'met' : 'NOT met'}`,
  });
  // Where the time goes: the JS thread's CPU per allocation, synced against unsynced.
  report({
    name: 'allocate.main_thread_us_per_allocation',
    value: round(real.mainThreadUsPerRequest),
    unit: 'us',
    baseline: round(unsynced.mainThreadUsPerRequest),
    ratio: round(real.mainThreadUsPerRequest / unsynced.mainThreadUsPerRequest, 2),
    target: `<= ${Math.round(1e6 / TARGET_PER_S)} us for ${TARGET_PER_S} req/s`,
  });
  report({
    name: 'floor.main_thread_us_per_allocation',
    value: round(floor.mainThreadUsPerRequest),
    unit: 'us',
  });
  report({
    name: 'allocate.p50',
    value: round(real.p50ms, 1),
    unit: 'ms',
    baseline: round(floor.p50ms, 1),
  });
  report({
    name: 'allocate.p99',
    value: round(real.p99ms, 1),
    unit: 'ms',
    baseline: round(floor.p99ms, 1),
    target: '<= 100 ms',
  });
}

export async function benchAssignmentsPage(): Promise<void> {
  await withDir(async (dir) => {
    const store = await Store.open(dir, { kek: kekLoader(dir) });
    await fillAllocatedPods(store, 10_000, 10);
    await store.close();
    const server = await spawnServer([
      CLI,
      'server',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'info',
    ]);
    try {
      const health = await timeGet(`${server.url}/healthz`, 20);
      const page = await timeGet(`${server.url}/assignments`, 10);
      const full = await timeGet(`${server.url}/assignments?limit=10000`, 5);
      const json = await timeGet(`${server.url}/v1/assignments`, 5);
      report({ name: 'healthz', value: round(health.ms, 2), unit: 'ms' });
      const vsHealth = (ms: number) => ({
        baseline: round(health.ms, 2),
        ratio: round(ms / health.ms, 1),
      });
      report({
        name: 'assignments_page.first_500_pods',
        value: round(page.ms, 1),
        unit: 'ms',
        ...vsHealth(page.ms),
        target: '<= 300 ms',
      });
      report({
        name: 'assignments_page.all_10000_pods',
        value: round(full.ms, 1),
        unit: 'ms',
        ...vsHealth(full.ms),
      });
      report({ name: 'assignments_page.all_10000_pods_bytes', value: full.bytes, unit: 'bytes' });
      report({
        name: 'v1_assignments.all_10000_pods',
        value: round(json.ms, 1),
        unit: 'ms',
        ...vsHealth(json.ms),
      });
    } finally {
      await server.stop();
    }
  });
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
