// bench/scale (issue 17, point 5): a store of 100,000 keys held by 25,000 pods. How long
// `pkm server` takes from its spawn to /readyz answering 200, its resident memory once ready and
// once /v1/assignments has been served, and how long /v1/assignments takes. Each carries a
// baseline measured in the same run: the same server on an empty store (start, memory), and
// /healthz (the listing).
// Sizes: PKM_BENCH_SCALE_PODS (25000 pods of 4 keys), PKM_BENCH_SCALE_STARTS (3 starts each).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kekLoader } from '../src/store/encryption.js';
import { Store } from '../src/store/store.js';
import { fillAllocatedPods } from './fill.js';
import { type ChildServer, report, sizeFromEnv, spawnServer, timeGet } from './lib.js';

const PODS = sizeFromEnv('PKM_BENCH_SCALE_PODS', 25_000);
const KEYS_PER_POD = 4;
const STARTS = sizeFromEnv('PKM_BENCH_SCALE_STARTS', 3);
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const TARGET_READY_MS = 2000;
const TARGET_RSS_MIB = 250;
const TARGET_ASSIGNMENTS_MS = 300;
/** How often /readyz is asked while the server starts. */
const POLL_MS = 5;

interface Start {
  /** From the spawn to the first 200 from /readyz. */
  readonly readyMs: number;
  /** VmRSS once ready, MiB. */
  readonly readyRssMib: number;
}

/** A field of /proc/PID/status in MiB (VmRSS: resident now; VmHWM: the peak so far). */
async function memoryMib(server: ChildServer, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${server.proc.pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/${server.proc.pid}/status`);
  return Number(kb) / 1024;
}

/** Spawns the server on `dir` and waits for /readyz to answer 200. */
async function start(dir: string): Promise<{ server: ChildServer; start: Start }> {
  const t0 = performance.now();
  const server = await spawnServer([CLI, 'server', '--data-dir', dir, '--listen', '127.0.0.1:0']);
  try {
    for (;;) {
      const res = await fetch(`${server.url}/readyz`).catch(() => undefined);
      await res?.arrayBuffer();
      if (res?.status === 200) break;
      await sleep(POLL_MS);
    }
    const readyMs = performance.now() - t0;
    return { server, start: { readyMs, readyRssMib: await memoryMib(server, 'VmRSS') } };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

function median<T>(xs: readonly T[], by: (x: T) => number): T {
  const sorted = [...xs].sort((a, b) => by(a) - by(b));
  const mid = sorted[Math.floor(sorted.length / 2)];
  if (mid === undefined) throw new Error('no runs to take a median of');
  return mid;
}

/** Starts the server STARTS times on `dir`; the last one is kept running for `then`. */
async function starts<T>(dir: string, then: (server: ChildServer) => Promise<T>) {
  const runs: Start[] = [];
  for (let i = 0; i < STARTS; i++) {
    const { server, start: run } = await start(dir);
    runs.push(run);
    if (i < STARTS - 1) {
      await server.stop();
      continue;
    }
    try {
      return { start: median(runs, (r) => r.readyMs), after: await then(server) };
    } finally {
      await server.stop();
    }
  }
  throw new Error('PKM_BENCH_SCALE_STARTS must be at least 1');
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-scale-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** /healthz and /v1/assignments timed on a running server, then its memory. */
async function listings(server: ChildServer) {
  const health = await timeGet(`${server.url}/healthz`, 20);
  // The first listing after a start reads every pod record from disk; the later ones find
  // those they can in the store's cache (store.ts pods()).
  const first = await timeGet(`${server.url}/v1/assignments`, 1);
  const listing = await timeGet(`${server.url}/v1/assignments`, 5);
  return {
    healthMs: health.ms,
    firstListingMs: first.ms,
    listingMs: listing.ms,
    listingBytes: listing.bytes,
    rssMib: await memoryMib(server, 'VmRSS'),
    peakMib: await memoryMib(server, 'VmHWM'),
  };
}

export async function benchScale(): Promise<void> {
  const empty = await withDir(async (dir) => {
    // An empty store, made (and its KEK) as the full one is, so both starts open a store.
    await (await Store.open(dir, { kek: kekLoader(dir) })).close();
    return starts(dir, listings);
  });
  const full = await withDir(async (dir) => {
    const store = await Store.open(dir, { kek: kekLoader(dir) });
    await fillAllocatedPods(store, PODS, KEYS_PER_POD);
    await store.close();
    // The first start after an upgrade checks every key record for a plaintext secret, once
    // (reseal.ts); the starts measured are the ones that follow, as every restart is. This
    // one also replays what LevelDB's log holds of the fill (up to its write buffer, 32 MiB:
    // buckets.ts), as a start after a kill -9 under load does: reported on its own.
    const first = await start(dir);
    await first.server.stop();
    return { ...(await starts(dir, listings)), first: first.start };
  });
  const keys = PODS * KEYS_PER_POD;
  const what = `${keys} keys held by ${PODS} pods`;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  report({
    name: 'scale.ready_ms',
    value: round(full.start.readyMs),
    unit: 'ms',
    baseline: round(empty.start.readyMs),
    ratio: round(full.start.readyMs / empty.start.readyMs, 2),
    target: `<= ${TARGET_READY_MS} ms from the spawn to /readyz 200, ${what}: ${verdict(full.start.readyMs <= TARGET_READY_MS)}`,
  });
  report({
    name: 'scale.ready_first_ms',
    value: round(full.first.readyMs),
    unit: 'ms',
    baseline: round(empty.start.readyMs),
    ratio: round(full.first.readyMs / empty.start.readyMs, 2),
    target: `the first start after the fill (its log replayed, every key record checked once): ${verdict(full.first.readyMs <= TARGET_READY_MS)} (<= ${TARGET_READY_MS} ms)`,
  });
  report({
    name: 'scale.rss_ready_first_mib',
    value: round(full.first.readyRssMib),
    unit: 'MiB',
    baseline: round(empty.start.readyRssMib),
    ratio: round(full.first.readyRssMib / empty.start.readyRssMib, 2),
  });
  // The peak over the start and the listings: what the pod's memory limit must allow.
  report({
    name: 'scale.rss_mib',
    value: round(full.after.peakMib),
    unit: 'MiB',
    baseline: round(empty.after.peakMib),
    ratio: round(full.after.peakMib / empty.after.peakMib, 2),
    target: `<= ${TARGET_RSS_MIB} MiB (VmHWM, after /v1/assignments), ${what}: ${verdict(full.after.peakMib <= TARGET_RSS_MIB)}`,
  });
  report({
    name: 'scale.rss_ready_mib',
    value: round(full.start.readyRssMib),
    unit: 'MiB',
    baseline: round(empty.start.readyRssMib),
    ratio: round(full.start.readyRssMib / empty.start.readyRssMib, 2),
  });
  report({
    name: 'scale.rss_after_assignments_mib',
    value: round(full.after.rssMib),
    unit: 'MiB',
    baseline: round(empty.after.rssMib),
    ratio: round(full.after.rssMib / empty.after.rssMib, 2),
  });
  report({
    name: 'scale.v1_assignments_ms',
    value: round(full.after.listingMs, 1),
    unit: 'ms',
    baseline: round(full.after.healthMs, 2),
    ratio: round(full.after.listingMs / full.after.healthMs, 1),
    target: `<= ${TARGET_ASSIGNMENTS_MS} ms (median of 5 after the first), ${what}: ${verdict(full.after.listingMs <= TARGET_ASSIGNMENTS_MS)}`,
  });
  report({
    name: 'scale.v1_assignments_first_ms',
    value: round(full.after.firstListingMs, 1),
    unit: 'ms',
    baseline: round(full.after.healthMs, 2),
    ratio: round(full.after.firstListingMs / full.after.healthMs, 1),
    target: `the first after the start, every record read from disk: ${verdict(full.after.firstListingMs <= TARGET_ASSIGNMENTS_MS)} (<= ${TARGET_ASSIGNMENTS_MS} ms)`,
  });
  report({
    name: 'scale.v1_assignments_bytes',
    value: full.after.listingBytes,
    unit: 'bytes',
  });
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
