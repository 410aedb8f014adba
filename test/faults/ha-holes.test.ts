// Holes in several servers active on one PostgreSQL database (issue 15), each a test that fails
// while the hole is open. Every "server" is its own PgStore, group committer and allocator in
// this process, as in test/store/pg-shared.test.ts; one test runs a leader in a child process
// so that it can be frozen (SIGSTOP).
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { PkmError } from '../../src/errors.js';
import { type KeySource, randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { FakeClock, MINUTE, onCleanup, testKek, until } from '../helpers.js';
import { findPostgres } from '../support/postgres.js';
import { useSharedServers } from '../support/shared-pg-servers.js';

const bins = await findPostgres();
const REUSE_DELAY = 10 * MINUTE;

describe.skipIf(bins === undefined)('several servers on one database: holes', () => {
  const { freshDatabase, openServer } = useSharedServers(bins, 'pkm_ha_holes');

  function allocatorOver(
    store: PgStore,
    clock: FakeClock,
    opts: { keySource?: KeySource; maxTotalKeys?: number; clock?: () => number } = {},
  ): Allocator {
    return new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: opts.clock ?? clock.now,
      monotonic: clock.monotonic,
      keySource: opts.keySource ?? randomKeySource,
      config: { reuseDelayMs: REUSE_DELAY, maxKeysPerPod: 8, maxTotalKeys: opts.maxTotalKeys },
      lookahead: 64,
    });
  }

  // DESIGN.md, "Safety rules": cooling counts elapsed time on a monotonic clock, so a wall clock
  // stepped forward releases nothing early. On one server the releasing server's own monotonic
  // record of the release enforces it (cooling.ts); a server that did not release the key has
  // only the record's `since` and its own start. So the servers of a shared store write and
  // compare times on the database's clock (PgStore.sharedClock), carried on their monotonic
  // clocks: a step of one server's own wall clock moves nothing (it once ended the other
  // server's coolings at once).
  it('a key released at server A still cools its full reuse delay at server B after B’s wall clock steps forward', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    // B's own wall clock is 11 minutes ahead (stepped by NTP, say).
    const storeB = await PgStore.open(url, {
      kek: testKek,
      lanes: true,
      presence: 'server',
      clock: () => Date.now() + REUSE_DELAY + MINUTE,
    });
    onCleanup(() => storeB.close());
    const monoA = new FakeClock();
    const monoB = new FakeClock();
    const a = allocatorOver(storeA, monoA, { clock: storeA.clock });
    const b = allocatorOver(storeB, monoB, { clock: storeB.clock });
    // Both servers have run for a while (longer than the reuse delay), on their monotonic clocks.
    monoA.advance(2 * REUSE_DELAY);
    monoB.advance(2 * REUSE_DELAY);
    const [key] = (await a.allocate('old', 1)).keys.map((k) => k.pubkey);
    if (!key) throw new Error('one key');
    await a.release('old', { stop: 'unconfirmed' });
    monoA.advance(1_000);
    monoB.advance(1_000);
    // B's store clock is the database's, whatever B's own clock says.
    expect(Math.abs(storeB.clock() - Date.now())).toBeLessThan(1_000);
    const onB = (await b.allocate('new', 1)).keys.map((k) => k.pubkey);
    expect(onB, 'B handed a key out one second after A released it').not.toContain(key);
    // B's own clock is so far off that B is not ready (its probe's ping).
    await expect(storeB.ping()).rejects.toMatchObject({ code: 'CLOCK_SKEW' });
  });

  // --max-total-keys bounds how many keys exist (in send mode: how much ETH is deposited). The
  // check reads tx.counts(), built on storedCounts(): this server's view as of its last commit.
  // With random keys no commit conflicts on the next index, so nothing refreshes the counts and
  // the database never checks the bound: each server makes keys up to the bound on its own.
  it('--max-total-keys holds across servers (random keys)', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const clock = new FakeClock();
    const a = allocatorOver(storeA, clock, { maxTotalKeys: 4 });
    const b = allocatorOver(storeB, clock, { maxTotalKeys: 4 });
    await a.allocate('pa', 3);
    const second = await b.allocate('pb', 3).then(
      () => 'allocated',
      (err: unknown) => err,
    );
    await storeB.refresh();
    const c = storeB.storedCounts();
    const total = c.free + c.allocated + c.cooling;
    expect(total, `${total} keys exist under --max-total-keys 4`).toBeLessThanOrEqual(4);
    expect(second).toMatchObject({ code: 'POOL_EXHAUSTED' });
  });

  // Held: two servers asked for the same pod at once give it one key set and the same answer.
  it('the same pod asked at two servers at once ends with one key set, both answers equal', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const clock = new FakeClock();
    const a = allocatorOver(storeA, clock);
    const b = allocatorOver(storeB, clock);
    for (let i = 0; i < 8; i++) {
      const pod = `same-${i}`;
      const [x, y] = await Promise.allSettled([a.allocate(pod, 3), b.allocate(pod, 3)]);
      const keys = [x, y].flatMap((r) =>
        r.status === 'fulfilled' ? [r.value.keys.map((k) => k.pubkey).sort()] : [],
      );
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(k).toEqual(keys[0]);
      const stored = await storeA.getPod(pod);
      expect([...(stored?.keys ?? [])].sort()).toEqual(keys[0]);
    }
    expect((await checkStore(storeA)).problems).toEqual([]);
  }, 60_000);

  // Held: a pod's claim at A (no proof) and allocations at B, all at once: the claimed key is
  // never handed out by B, whichever commit lands first.
  it('a claim at one server and allocations at another, at once, never hand the claimed key out', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const clock = new FakeClock();
    const a = allocatorOver(storeA, clock);
    const b = allocatorOver(storeB, clock);
    const first = (await a.allocate('x', 6)).keys.map((k) => k.pubkey);
    await a.release('x');
    clock.advance(REUSE_DELAY + 1);
    const [beat, ...asks] = await Promise.allSettled([
      a.heartbeat('p', first),
      ...Array.from({ length: 6 }, (_, i) => b.allocate(`q-${i}`, 1)),
    ]);
    if (beat?.status !== 'fulfilled') throw new Error('the heartbeat failed');
    const handed = asks.flatMap((r) =>
      r.status === 'fulfilled' ? r.value.keys.map((k) => k.pubkey) : [],
    );
    // Refused claims are held from every pod; none of them went to a q pod after being held.
    for (const pk of beat.value.refused) {
      const rec = await storeB.getKey(pk);
      if (rec?.state === 'allocated')
        expect(rec.history.at(-1)?.at ?? 0).toBeLessThan(rec.heldUntil ?? Infinity);
    }
    expect(new Set(handed).size).toBe(handed.length);
    expect((await checkStore(storeB)).problems).toEqual([]);
  }, 60_000);

  // Held: sessions killed at random (pg_terminate_backend) while two servers allocate and
  // release: failures are coded and nothing acknowledged is lost; no key is in two pods.
  it('random sessions killed mid-burst: answered calls hold, no key in two pods, the store checks clean', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const clock = new FakeClock();
    const servers = [allocatorOver(storeA, clock), allocatorOver(storeB, clock)];
    let killing = true;
    const killer = (async () => {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        while (killing) {
          await admin.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
             ORDER BY random() LIMIT 1`,
          );
          await new Promise((r) => setTimeout(r, 3));
        }
      } finally {
        await admin.end();
      }
    })();
    const acknowledged = new Map<string, string[]>();
    const codes = new Set<string>();
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const pod = `burst-${i}`;
        const server = servers[i % 2];
        if (!server) return;
        for (let t = 0; t < 20; t++) {
          try {
            const got = await server.allocate(pod, 2);
            acknowledged.set(pod, got.keys.map((k) => k.pubkey).sort());
            break;
          } catch (err) {
            codes.add(err instanceof PkmError ? err.code : String(err));
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }),
    );
    killing = false;
    await killer;
    // The killer did hit the burst: some calls failed and were asked again.
    expect(codes.size).toBeGreaterThan(0);
    const check = await openServer(url);
    for (const [pod, keys] of acknowledged)
      expect([...((await check.getPod(pod))?.keys ?? [])].sort(), pod).toEqual(keys);
    const holders = new Map<string, string>();
    for await (const [name, record] of check.pods())
      for (const pk of record.keys) {
        expect(holders.get(pk), `${pk} in ${name} and ${holders.get(pk)}`).toBeUndefined();
        holders.set(pk, name);
      }
    expect([...codes].filter((c) => !c.startsWith('STORE_') && c !== 'NOT_READY')).toEqual([]);
    expect((await checkStore(check)).problems).toEqual([]);
  }, 90_000);

  // Issue 15, point 4: "another server takes over within 15 s". A leader process that is frozen
  // (SIGSTOP, a stuck event loop, a node under memory pressure) keeps its lock session: its
  // kernel still answers the database's TCP keepalives, so the session never ends and no other
  // server is elected while it stays frozen. Deposits and the watcher's releases stop.
  it('a frozen leader is replaced within 15 s', async () => {
    const url = await freshDatabase();
    // The schema first, so the child only opens it.
    const b = await PgStore.open(url, { kek: testKek, presence: 'server' });
    onCleanup(() => b.close());
    const child = spawnLeader(url);
    onCleanup(async () => {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    });
    const lines: string[] = [];
    child.stdout?.on('data', (d: Buffer) => lines.push(d.toString()));
    await until(() => lines.join('').includes('LEADER'), 10_000);
    b.leadership().start();
    child.kill('SIGSTOP');
    const took = await until(() => b.leadership().isLeader, 15_000).then(
      () => true,
      () => false,
    );
    child.kill('SIGCONT');
    expect(took, 'no server took over from a frozen leader within 15 s').toBe(true);
  }, 40_000);
});

/** A leader in a process of its own, from the built store (npm run build first). */
function spawnLeader(url: string): ChildProcess {
  const store = fileURLToPath(new URL('../../dist/store/pg/pg-store.js', import.meta.url));
  const script = `
    const { PgStore } = await import(${JSON.stringify(store)});
    const s = await PgStore.open(process.env.PKM_URL, { presence: 'server' });
    s.leadership().watch((l) => { if (l) process.stdout.write('LEADER\\n'); });
    s.leadership().start();
    setInterval(() => undefined, 1000);
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, PKM_URL: url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}
