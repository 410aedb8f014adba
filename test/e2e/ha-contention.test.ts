// Issue 15, point 5's first two fault tests, on the built CLI: three `pkm server --store
// postgres://…` processes on one PostgreSQL database, keys derived from one mnemonic (so every
// server contends for the next derivation index) and a short --reuse-delay (so released keys
// come back to the pool while the burst runs, and pool picks are contended too).
//   1. Contention: bursts of 300 concurrent allocations, releases and re-allocations of
//      released pods, spread over the three servers.
//   2. A server dies: kill -9 of one of them in the middle of a burst.
// Afterwards (ha-checks.ts): no key in two pods, every acknowledged answer stored, each
// derivation path once, the store's check clean.
import { describe, expect, it } from 'vitest';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { checkEnd, moves, rollbacks } from './ha-checks.js';
import { Fleet, newDatabase, sharedFiles } from './ha-fleet.js';
import { allocate, type ClientOptions, Ledger, type Op, release, runScripts } from './ha-pods.js';

const bins = await findPostgres();
const REUSE_DELAY_MS = 500;
/** A request unanswered for 60 s hangs (generous: this machine's 2 cores are shared). */
const CLIENT: ClientOptions = { requestTimeoutMs: 60_000, opDeadlineMs: 120_000 };

const range = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}`);
const oneOp = (pods: readonly string[], op: (pod: string, i: number) => Op) =>
  pods.map((pod, i): [string, Op[]] => [pod, [op(pod, i)]]);
/** 1, 2 or 3 keys, the same for the same i on every run. */
const someKeys = (i: number) => 1 + (i % 3);

async function threeServers() {
  const url = await newDatabase(cluster(), 'pkm_ha');
  const { kekFile, mnemonicFile } = await sharedFiles();
  const fleet = await Fleet.start(3, [
    '--store',
    url,
    '--kek-file',
    kekFile,
    '--mnemonic-file',
    mnemonicFile,
    '--reuse-delay',
    `${REUSE_DELAY_MS}ms`,
    '--resync-window',
    '0',
    '--rate-limit',
    '0',
  ]);
  return { url, kekFile, fleet };
}

/** Releasing pods, re-allocating released ones and new ones all at once: `ops` of them. */
function burst(wave: string, holding: string[], released: string[], fresh: number) {
  return new Map<string, Op[]>([
    ...oneOp(holding, () => release),
    ...oneOp(released, (_, i) => allocate(someKeys(i + 1))),
    ...oneOp(range(wave, 0, fresh), (_, i) => allocate(someKeys(i))),
  ]);
}

const cluster = bins
  ? usePostgres(bins)
  : () => {
      throw new Error('no PostgreSQL');
    };

describe.skipIf(bins === undefined)('three servers on one PostgreSQL database', () => {
  it('contention: 2 bursts of 300 concurrent allocations, releases and re-allocations; no key in two pods, nothing acknowledged lost, db check clean', async () => {
    const started = Date.now();
    const { url, fleet } = await threeServers();
    const ledger = new Ledger();
    // Setting up: 150 pods get keys (75 of them then release theirs, which cool for
    // REUSE_DELAY_MS and so are in the pool when the first burst begins).
    const holding = range('h', 0, 75);
    const released = range('r', 0, 75);
    await runScripts(
      fleet,
      ledger,
      new Map([
        ...oneOp(holding, (_, i) => allocate(someKeys(i))),
        ...oneOp(released, () => allocate(2)),
      ]),
      CLIENT,
    );
    await runScripts(fleet, ledger, new Map(oneOp(released, () => release)), CLIENT);
    await new Promise((r) => setTimeout(r, REUSE_DELAY_MS * 2));
    const setupEnd = ledger.attempts.length;

    // Burst 1: 75 releases, 75 re-allocations of released pods, 150 new pods: 300 at once.
    const first = burst('n', holding, released, 150);
    expect(first.size).toBe(300);
    await runScripts(fleet, ledger, first, CLIENT);
    // Burst 2, roles turned: the first burst's holders release, its released pods and half
    // its new pods (topping up by one) allocate, the other half releases.
    const news = range('n', 0, 150);
    const second = new Map<string, Op[]>([
      ...oneOp(released, () => release),
      ...oneOp(holding, (_, i) => allocate(someKeys(i + 2))),
      ...oneOp(news.slice(0, 75), () => release),
      ...oneOp(news.slice(75), (pod) => allocate((ledger.acked(pod)?.length ?? 0) + 1)),
    ]);
    expect(second.size).toBe(300);
    await runScripts(fleet, ledger, second, CLIENT);

    const bursts = ledger.attempts.slice(setupEnd);
    const tally = ledger.tally();
    const report = await checkEnd(fleet, url, ledger, REUSE_DELAY_MS);
    const moved = moves(ledger.holds);
    // Commits one server based on reads another's commit overtook, refused and rolled back
    // (STORE_CONFLICT inside the servers; their group committers ran them again).
    await new Promise((r) => setTimeout(r, 1_500));
    const refused = await rollbacks(url);
    console.log(
      JSON.stringify({
        test: 'contention',
        moved,
        rolledBack: refused,
        ms: Date.now() - started,
        operations: { setup: setupEnd, bursts: bursts.length },
        answers: tally,
        latencyMs: ledger.latency(),
        keys: report.keys,
        derived: report.derived,
        pods: report.pods,
      }),
    );
    expect(report.problems).toEqual([]);
    // Only 200s, and STORE_CONFLICT as a coded 503 with Retry-After (asked again above).
    for (const a of ledger.attempts) {
      if (a.answer.kind === 'status' && a.answer.status === 200) continue;
      expect(a.answer).toMatchObject({ kind: 'status', status: 503, code: 'STORE_CONFLICT' });
      expect(Number(a.answer.kind === 'status' ? a.answer.retryAfter : 0)).toBeGreaterThan(0);
    }
    // The bursts did what they say: keys came back from the pool and were derived anew.
    expect(report.derived).toBeGreaterThan(300);
    expect(refused).toBeGreaterThan(0);
    expect(moved.toAnother).toBeGreaterThan(0);
    expect(moved.reclaimed).toBeGreaterThan(0);
  }, 240_000);

  it('a server dies: kill -9 of one of three mid-burst loses nothing acknowledged, the other two carry on', async () => {
    const started = Date.now();
    const { url, fleet } = await threeServers();
    const ledger = new Ledger();
    const holding = range('h', 0, 60);
    const released = range('r', 0, 60);
    await runScripts(
      fleet,
      ledger,
      new Map([
        ...oneOp(holding, (_, i) => allocate(someKeys(i))),
        ...oneOp(released, () => allocate(2)),
      ]),
      CLIENT,
    );
    await runScripts(fleet, ledger, new Map(oneOp(released, () => release)), CLIENT);
    await new Promise((r) => setTimeout(r, REUSE_DELAY_MS * 2));

    // Every pod churns: 4 operations each, 120 pods, 480 operations.
    const scripts = new Map<string, Op[]>([
      ...holding.map((p, i): [string, Op[]] => [
        p,
        [release, allocate(someKeys(i)), release, allocate(2)],
      ]),
      ...released.map((p, i): [string, Op[]] => [
        p,
        [allocate(someKeys(i + 1)), release, allocate(3), release],
      ]),
    ]);
    const acksBefore = ledger.acks;
    const victim = 1;
    const running = runScripts(fleet, ledger, scripts, CLIENT);
    // Killed once a quarter of the burst is acknowledged: requests to it are in flight.
    while (ledger.acks - acksBefore < 120) await new Promise((r) => setTimeout(r, 5));
    await fleet.kill(victim);
    const killedAt = fleet.killedAt.get(victim) ?? 0;
    await running;

    const lostAtVictim = ledger.attempts.filter(
      (a) => a.server === victim && a.answer.kind === 'lost',
    );
    const ackedByVictim = ledger.attempts.filter(
      (a) => a.server === victim && a.answer.kind === 'status' && a.answer.status === 200,
    );
    const afterKill = ledger.attempts.filter((a) => a.sentAt > killedAt);
    const report = await checkEnd(fleet, url, ledger, REUSE_DELAY_MS);
    console.log(
      JSON.stringify({
        test: 'server dies',
        ms: Date.now() - started,
        answers: ledger.tally(),
        latencyMs: ledger.latency(),
        atVictim: { acknowledged: ackedByVictim.length, lost: lostAtVictim.length },
        afterKill: ledger.tally((a) => a.sentAt > killedAt),
        keys: report.keys,
        derived: report.derived,
      }),
    );
    // Mid-burst: it had answered, and requests to it were cut off by the kill.
    expect(ackedByVictim.length).toBeGreaterThan(0);
    expect(lostAtVictim.length).toBeGreaterThan(0);
    expect(report.problems).toEqual([]);
    // The other two answered everything sent after the kill (a conflict is a coded 503).
    expect(afterKill.length).toBeGreaterThan(0);
    for (const a of afterKill) {
      expect(a.server).not.toBe(victim);
      if (a.answer.kind === 'status' && a.answer.status === 200) continue;
      expect(a.answer).toMatchObject({ kind: 'status', status: 503, code: 'STORE_CONFLICT' });
    }
    // Nothing but the kill cut a connection.
    expect(
      ledger.attempts.filter((a) => a.answer.kind !== 'status' && a.server !== victim),
    ).toEqual([]);
    for (const i of fleet.alive()) expect((await fetch(`${fleet.url(i)}/readyz`)).status).toBe(200);
  }, 240_000);
});
