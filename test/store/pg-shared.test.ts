// Several servers on one PostgreSQL database (issue 15, points 3 and 4), in one process: each
// "server" is its own PgStore (its own pool, its own in-memory counters and next index) with
// its own group committer and allocator, as separate `pkm server` processes would have.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { LEADER_LOCK } from '../../src/store/pg/leader.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { PRESENCE_LOCK } from '../../src/store/pg/presence.js';
import { FakeClock, onCleanup, testKek, until } from '../helpers.js';
import { mnemonic } from '../support/allocator.js';
import { findPostgres } from '../support/postgres.js';
import { useSharedServers } from '../support/shared-pg-servers.js';
import { freeKey, pod } from './conformance-support.js';

const bins = await findPostgres();

describe.skipIf(bins === undefined)('several servers on one PostgreSQL database', () => {
  const { freshDatabase, openServer } = useSharedServers(bins, 'pkm_shared');

  async function adminQuery(url: string, sql: string, params: unknown[] = []) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      return await admin.query(sql, params);
    } finally {
      await admin.end();
    }
  }

  function allocatorOver(store: PgStore, clock: FakeClock, indexed: boolean): Allocator {
    return new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: clock.now,
      monotonic: clock.monotonic,
      keySource: indexed ? mnemonic : randomKeySource,
      config: { reuseDelayMs: 0, maxKeysPerPod: 8, maxTotalKeys: undefined },
      lookahead: 64,
    });
  }

  it('a change based on a record another server changed is refused whole, and nothing is written', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    const b = await openServer(url);
    const key = freeKey(a, 1, 100);
    await a.commit({ keys: [{ after: key }], pods: [] });
    const seenByB = await b.getKey(key.pubkey);
    expect(seenByB).toEqual(key);
    // A hands the key to pod x; B, from its older read, to pod y.
    const toX = { ...key, state: 'allocated' as const, pod: 'x', since: 200 };
    await a.commit({
      keys: [{ before: key, after: toX }],
      pods: [{ name: 'x', after: pod([key.pubkey]) }],
    });
    const toY = { ...key, state: 'allocated' as const, pod: 'y', since: 200 };
    await expect(
      b.commit({
        keys: [{ before: key, after: toY }],
        pods: [{ name: 'y', after: pod([key.pubkey]) }],
        events: [{ at: 200, type: 'allocate', pod: 'y', pubkeys: [key.pubkey] }],
      }),
    ).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    expect(await b.getKey(key.pubkey)).toEqual(toX);
    expect(await b.getPod('y')).toBeUndefined();
    expect(await b.events(0, 10)).toEqual([]);
    // B's counters followed the database: the key is allocated, none is free.
    expect(b.storedCounts()).toMatchObject({ allocated: 1, free: 0, pods: 1 });
    // A pod another server made meanwhile is a conflict too (B saw it absent).
    await expect(
      b.commit({ keys: [], pods: [{ name: 'x', after: pod([]) }] }),
    ).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    expect((await checkStore(b)).problems).toEqual([]);
  });

  it('servers that pick by lanes answer their own lane first, so their picks seldom meet', async () => {
    const url = await freshDatabase();
    const a = await PgStore.open(url, { kek: testKek, lanes: true });
    onCleanup(() => a.close());
    let b = await PgStore.open(url, { kek: testKek, lanes: true });
    for (let i = 0; b.lane === a.lane && i < 50; i++) {
      await b.close();
      b = await PgStore.open(url, { kek: testKek, lanes: true });
    }
    const other = b;
    onCleanup(() => other.close());
    // 64 free keys, 4 in each lane (pubkeyOf(n) ends in n's last hex digit).
    const keys = Array.from({ length: 64 }, (_, n) => freeKey(a, n + 1, 1000 + n));
    await a.commit({ keys: keys.map((after) => ({ after })), pods: [] });
    const pickA = await a.oldest('unallocated', 4);
    const pickB = await other.oldest('unallocated', 4);
    expect(pickA.every((e) => e.pubkey.endsWith(a.lane ?? '?'))).toBe(true);
    expect(pickB.every((e) => e.pubkey.endsWith(other.lane ?? '?'))).toBe(true);
    expect(pickA.filter((e) => pickB.some((f) => f.pubkey === e.pubkey))).toEqual([]);
    // A chunk read for a group (Transaction) that its own lane can serve stays there.
    const lane = a.lane;
    const chunk = await a.oldestRecords('unallocated', 64, { need: 3 });
    expect(chunk.records.map((r) => r.pubkey)).toEqual(pickA.map((e) => e.pubkey));
    expect(chunk.complete).toBe(false);
    expect(a.lane).toBe(lane);
    // Oldest first within the lane; past it, the oldest of another lane, which becomes its own.
    const six = await a.oldest('unallocated', 6);
    expect(six.slice(0, 4)).toEqual(pickA);
    const moved = a.lane ?? '?';
    expect(moved).not.toBe(lane);
    expect(six.slice(4).map((e) => e.since)).toEqual(
      keys
        .filter((k) => k.pubkey.endsWith(moved))
        .slice(0, 2)
        .map((k) => k.since),
    );
  });

  it('a server whose commit another overtook moves to another lane', async () => {
    const url = await freshDatabase();
    const a = await PgStore.open(url, { kek: testKek, lanes: true });
    onCleanup(() => a.close());
    const b = await openServer(url);
    await b.commit({ keys: [], pods: [{ name: 'x', after: pod([]) }] });
    const lane = a.lane;
    await expect(
      a.commit({ keys: [], pods: [{ name: 'x', after: pod([]) }] }),
    ).rejects.toMatchObject({ code: 'STORE_CONFLICT' });
    expect(a.lane).not.toBe(lane);
  });

  it('a derivation index taken by another server is refused, and the next try starts past it', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    const b = await openServer(url);
    await a.commit({ keys: [], pods: [], nextKeyIndex: 1 });
    expect(b.nextKeyIndex()).toBe(0);
    await expect(b.commit({ keys: [], pods: [], nextKeyIndex: 1 })).rejects.toMatchObject({
      code: 'STORE_CONFLICT',
    });
    expect(b.nextKeyIndex()).toBe(1);
    await b.commit({ keys: [], pods: [], nextKeyIndex: 2 });
    expect((await openServer(url)).nextKeyIndex()).toBe(2);
  });

  it('two allocators deriving and recycling at once never give one key to two pods', async () => {
    const url = await freshDatabase();
    const stores = [await openServer(url), await openServer(url)];
    const clock = new FakeClock();
    const allocators = stores.map((s) => allocatorOver(s, clock, true));
    const pods = Array.from({ length: 24 }, (_, i) => `pod-${i}`);
    // Round one: every pod gets 2 new keys, half the pods through each server, all at once.
    await Promise.all(pods.map((p, i) => allocators[i % 2]?.allocate(p, 2)));
    // Half the pods leave (their stop confirmed), and new pods take their keys, crossed over.
    await Promise.all(pods.slice(0, 12).map((p, i) => allocators[(i + 1) % 2]?.release(p)));
    clock.advance(1);
    const newcomers = Array.from({ length: 12 }, (_, i) => `new-${i}`);
    await Promise.all(newcomers.map((p, i) => allocators[i % 2]?.allocate(p, 2)));

    const holders = new Map<string, string>();
    for await (const [name, record] of stores[0]?.pods() ?? [])
      for (const pk of record.keys) {
        expect(holders.get(pk), `${pk} in ${name} and ${holders.get(pk)}`).toBeUndefined();
        holders.set(pk, name);
      }
    expect(holders.size).toBe(48);
    // Every derivation index once: 48 keys derived at most (recycled keys reused first).
    const indexes = new Set<string>();
    for await (const r of stores[0]?.keyRecords() ?? []) {
      expect(indexes.has(r.path ?? r.pubkey)).toBe(false);
      indexes.add(r.path ?? r.pubkey);
    }
    expect(indexes.size).toBe(await stores[0]?.nextKeyIndex());
    const report = await checkStore(stores[1] as PgStore);
    expect(report.problems).toEqual([]);
  }, 60_000);

  it('a key a pod claimed at one server without a proof is held from pods at every server', async () => {
    const url = await freshDatabase();
    const stores = [await openServer(url), await openServer(url)];
    const clock = new FakeClock();
    const [a, b] = stores.map((s) => allocatorOver(s, clock, false));
    if (!a || !b) throw new Error('two allocators');
    const [key] = (await a.allocate('x', 1)).keys.map((k) => k.pubkey);
    if (!key) throw new Error('one key');
    await a.release('x');
    clock.advance(1);
    // Pod p tells server A it runs the key, with no proof: refused, and held from everyone.
    const beat = await a.heartbeat('p', [key]);
    expect(beat.refused).toEqual([key]);
    // Server B, asked for a key by another pod, leaves it alone: a new key instead.
    const got = (await b.allocate('q', 1)).keys.map((k) => k.pubkey);
    expect(got).not.toContain(key);
    expect((await stores[1]?.getKey(key))?.state).toBe('cooling');
  });

  it('while one server looks for reported keys among the indexes ahead, no server derives', async () => {
    const url = await freshDatabase();
    const stores = [await openServer(url), await openServer(url)];
    const clock = new FakeClock();
    const [a, b] = stores.map((s) => allocatorOver(s, clock, true));
    if (!a || !b) throw new Error('two allocators');
    const ran = [0, 1].map((i) => mnemonic.pubkeyAt?.(i) ?? '');
    // Pod p runs the keys at indexes 0 and 1 (the store lost them): server A searches the
    // indexes ahead (64 keys: about a second); server B is asked for new keys meanwhile.
    // With a key of another source beside them, the search goes through every index ahead.
    const [stranger] = await randomKeySource.make(1, 0);
    const beat = a.heartbeat('p', [...ran, stranger?.pubkey ?? '']);
    // Past its first commit (a few ms), well inside its search.
    await new Promise((r) => setTimeout(r, 150));
    const asked = await b.allocate('q', 2).then(
      (got) => got.keys.map((k) => k.pubkey),
      (err: unknown) => err,
    );
    await beat;
    // B either waited (RESYNCING, asked again later) or derived past them: never one of them.
    if (Array.isArray(asked)) expect(asked.filter((pk) => ran.includes(pk))).toEqual([]);
    else expect(asked).toMatchObject({ code: 'RESYNCING' });
    // Without proofs the keys are not recorded as p's, but the next index moved past them.
    expect(stores[0]?.nextKeyIndex() ?? 0).toBeGreaterThanOrEqual(2);
    // The search is over: its pause is gone, and B derives past the reported indexes.
    expect(await stores[1]?.getMeta(MetaKey.derivationPause)).toBeUndefined();
    const after = (await b.allocate('q', 2)).keys.map((k) => k.pubkey);
    expect(after.filter((pk) => ran.includes(pk))).toEqual([]);
    expect((await checkStore(stores[1] as PgStore)).problems).toEqual([]);
  }, 30_000);

  it('one leader at a time; a stopped leader is replaced, and a commit that needs the lead is fenced', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    const b = await openServer(url);
    a.leadership().start();
    await until(() => a.leadership().isLeader, 5_000);
    b.leadership().start();
    await new Promise((r) => setTimeout(r, 400));
    expect(b.leadership().isLeader).toBe(false);
    await expect(
      b.commit({ keys: [], pods: [], meta: [['fenced', 'b']], leaderOnly: true }),
    ).rejects.toMatchObject({ code: 'NOT_LEADER' });
    await a.commit({ keys: [], pods: [], meta: [['fenced', 'a']], leaderOnly: true });
    expect(await b.getMeta('fenced')).toBe('a');

    const seen: boolean[] = [];
    b.leadership().watch((leader) => seen.push(leader));
    await a.leadership().stop();
    expect(a.leadership().isLeader).toBe(false);
    await until(() => b.leadership().isLeader, 5_000);
    expect(seen).toEqual([false, true]);
    await expect(
      a.commit({ keys: [], pods: [], meta: [['fenced', 'a2']], leaderOnly: true }),
    ).rejects.toMatchObject({ code: 'NOT_LEADER' });
  });

  it('a leader whose lock session is killed stops at once, before another takes over', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    const b = await openServer(url);
    a.leadership().start();
    await until(() => a.leadership().isLeader, 5_000);
    b.leadership().start();
    const changes: string[] = [];
    a.leadership().watch((l) => changes.push(l ? 'a+' : 'a-'));
    b.leadership().watch((l) => changes.push(l ? 'b+' : 'b-'));
    expect(changes).toEqual(['a+', 'b-']);
    changes.length = 0;
    // An admin (or a failover) ends the leader's session: its lock is gone with it.
    await adminQuery(
      url,
      `SELECT pg_terminate_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND granted`,
      [LEADER_LOCK],
    );
    // The old leader stops first; then one server (either: both campaign) is elected.
    await until(() => changes.length >= 2, 5_000);
    expect(changes[0]).toBe('a-');
    expect(['a+', 'b+']).toContain(changes[1]);
    expect(Number(a.leadership().isLeader) + Number(b.leadership().isLeader)).toBe(1);
  });

  it('a server whose clock is off the database’s by more than a second is not ready', async () => {
    const url = await freshDatabase();
    const right = await openServer(url);
    await right.ping();
    const ahead = await PgStore.open(url, { kek: testKek, clock: () => Date.now() + 5_000 });
    onCleanup(() => ahead.close());
    await expect(ahead.ping()).rejects.toMatchObject({ code: 'CLOCK_SKEW' });
    const behind = await PgStore.open(url, { kek: testKek, clock: () => Date.now() - 1_500 });
    onCleanup(() => behind.close());
    await expect(behind.ping()).rejects.toMatchObject({ code: 'CLOCK_SKEW' });
  });

  it('no commit lands while a maintenance command holds the database alone, even one that got in while the server had lost its presence lock', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    await a.commit({ keys: [], pods: [], meta: [['before', '1']] });
    // The server's presence session ends (as at a database restart) and, before its next
    // ping takes the lock again, a maintenance command takes it alone.
    await adminQuery(
      url,
      `SELECT pg_terminate_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND granted`,
      [PRESENCE_LOCK],
    );
    const maintenance = new pg.Client({ connectionString: url });
    await maintenance.connect();
    onCleanup(() => maintenance.end());
    await until(async () => {
      const res = await maintenance.query('SELECT pg_try_advisory_lock($1) AS ok', [PRESENCE_LOCK]);
      return res.rows[0]?.ok === true;
    }, 5_000);
    await expect(a.commit({ keys: [], pods: [], meta: [['during', '1']] })).rejects.toMatchObject({
      code: 'STORE_LOCKED',
    });
    expect(await a.getMeta('during')).toBeUndefined();
    await maintenance.query('SELECT pg_advisory_unlock($1)', [PRESENCE_LOCK]);
    await a.commit({ keys: [], pods: [], meta: [['after', '1']] });
    expect(await a.getMeta('after')).toBe('1');
  });

  it('a change that needs the database alone (a KEK rotation step) is refused while another server has it open', async () => {
    const url = await freshDatabase();
    const a = await openServer(url);
    const b = await openServer(url);
    await expect(
      a.commit({ keys: [], pods: [], meta: [['rotating', '1']], alone: true }),
    ).rejects.toMatchObject({ code: 'STORE_LOCKED' });
    expect(await a.getMeta('rotating')).toBeUndefined();
    await b.close();
    await a.commit({ keys: [], pods: [], meta: [['rotating', '1']], alone: true });
    expect(await a.getMeta('rotating')).toBe('1');
  });

  it('every server answers heartbeats with the one boot token of the database', async () => {
    const url = await freshDatabase();
    const [a, b] = [await openServer(url), await openServer(url)];
    const [ta, tb] = await Promise.all([a.bootToken(), b.bootToken()]);
    expect(ta).toMatch(/^[0-9a-f]{32}$/);
    expect(tb).toBe(ta);
    expect(await (await openServer(url)).bootToken()).toBe(ta);
  });
});
