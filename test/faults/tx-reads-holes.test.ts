// Holes in a group's kept reads on a shared store (issue 15; commits 788d47b, cc0df58): a
// Transaction keeps pod records, key records and pool chunks for its whole group, and a pool
// read by lanes stops at its own lane when that lane can serve what is needed. Each test fails
// while its hole is open. Real PostgreSQL, several PgStores on one database as separate
// `pkm server` processes would have them.
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { Transaction } from '../../src/allocation/transaction.js';
import { type KeySource, randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import type { PgStore } from '../../src/store/pg/pg-store.js';
import { FakeClock, MINUTE, until } from '../helpers.js';
import { coolingKey, freeKey, pod } from '../store/conformance-support.js';
import { mnemonic } from '../support/allocator.js';
import { findPostgres } from '../support/postgres.js';
import { useSharedServers } from '../support/shared-pg-servers.js';

const bins = await findPostgres();
const REUSE_DELAY = 10 * MINUTE;

/** Resolves with `p`'s outcome, or 'timed out' after `ms` (the promise is left running). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const out = new Promise<'timed out'>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), ms);
  });
  return Promise.race([p, out]).finally(() => clearTimeout(timer));
}

/** A key number whose pubkey (conformance-support pubkeyOf) ends in hex digit `lane`. */
function inLane(lane: string, i: number): number {
  return i * 16 + Number.parseInt(lane, 16);
}

describe.skipIf(bins === undefined)('a group’s kept reads on a shared store: holes', () => {
  const { freshDatabase, openServer } = useSharedServers(bins, 'pkm_tx_reads');

  function allocatorOver(
    store: PgStore,
    clock: FakeClock,
    opts: { keySource?: KeySource; lookahead?: number; reuseDelayMs?: number } = {},
  ): Allocator {
    return new Allocator({
      store,
      group: GroupCommitter.of(store),
      clock: store.clock,
      monotonic: clock.monotonic,
      keySource: opts.keySource ?? randomKeySource,
      config: {
        reuseDelayMs: opts.reuseDelayMs ?? REUSE_DELAY,
        maxKeysPerPod: 8,
        maxTotalKeys: undefined,
      },
      lookahead: opts.lookahead ?? 64,
    });
  }

  /**
   * Holds `store`'s group committer busy until the returned function is called, so that the
   * requests queued meanwhile run as one group once it is.
   */
  async function holdCommitter(store: PgStore): Promise<() => Promise<void>> {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const held = GroupCommitter.of(store).run(() => gate);
    // The committer starts a group once the event loop's I/O phase ends (group-commit.ts): the
    // held request goes alone, and what the test queues next waits for the next group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    return async () => {
      open();
      await held;
    };
  }

  // Transaction.poolRead reads a cooling chunk without the cutoff, and the store stops at its
  // own lane once that lane has `need` rows, whether or not they fit the cutoff. A lane holding
  // at least `need` keys still inside their reuse delay then never yields the `limit` fitting
  // ones the chunk loop waits for, and the next chunk read is the same: the loop never ends.
  it('a cooling read whose own lane holds only keys inside their reuse delay ends', async () => {
    const url = await freshDatabase();
    const store = await openServer(url);
    const lane = store.lane ?? '0';
    const now = store.clock();
    // Three keys of this server's lane released just now (inside the reuse delay).
    const keys = [0, 1, 2].map((i) => coolingKey(store, inLane(lane, i + 1), now, 'gone'));
    await store.commit({
      keys: keys.map((after) => ({ after })),
      pods: [
        {
          name: 'gone',
          after: pod(
            [],
            keys.map((k) => k.pubkey),
          ),
        },
      ],
    });
    const tx = new Transaction(store);
    const read = await within(tx.oldest('cooling', 1, now - REUSE_DELAY), 5_000);
    expect(read, 'the cooling read never ended').toEqual([]);
  });

  // The same through the allocator, as `pkm server` runs it: sixteen pods get the pool's 64
  // keys and are released (a rollout), so keys cool in every lane (a server hops lanes: its lane
  // at the time of the next allocation is any). The next allocation reads its lane's cooling
  // keys, all inside their reuse delay, and never ends, and with it every later request of the
  // server (the group committer drains one group at a time).
  it('an allocation after a rollout released keys in every lane is answered', async () => {
    const url = await freshDatabase();
    const store = await openServer(url);
    const a = allocatorOver(store, new FakeClock());
    const now = store.clock();
    const free = Array.from({ length: 64 }, (_, n) => freeKey(store, n + 1, now - 10_000 + n));
    await store.commit({ keys: free.map((after) => ({ after })), pods: [] });
    for (let i = 0; i < 16; i++) await a.allocate(`old-${i}`, 4);
    for (let i = 0; i < 16; i++) await a.release(`old-${i}`);
    const lanes = new Set((await store.indexEntries('cooling')).map((e) => e.pubkey.slice(-1)));
    expect(lanes.size).toBe(16);
    const got = await within(a.allocate('new', 1), 5_000);
    expect(got, 'the allocation never ended').not.toBe('timed out');
    const later = await within(a.release('new'), 5_000);
    expect(later, 'the server answers nothing after it').not.toBe('timed out');
    expect((await checkStore(store)).problems).toEqual([]);
  });

  // Transaction.getKey keeps a key read absent (`undefined`) for the rest of the group, and
  // getKeys then answers from keyReads: a key another server made meanwhile is left out of the
  // answer without a word (StoreContract.getKeys: "a missing one is STORE_CORRUPT"; on a shared
  // store it is a read another commit overtook, STORE_CONFLICT). releaseIn builds its change
  // from getKeys(pod.keys): the pod's record drops the key, the key's record is not written, so
  // no before-image catches it.
  it('a key read absent earlier in the group and made meanwhile by another server is not dropped from getKeys', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const tx = new Transaction(storeA);
    const k0 = mnemonic.pubkeyAt?.(0) ?? '';
    expect(await tx.getKey(k0)).toBeUndefined();
    const b = allocatorOver(storeB, new FakeClock(), { keySource: mnemonic });
    const [made] = (await b.allocate('r', 1)).keys.map((k) => k.pubkey);
    expect(made).toBe(k0);
    const read = await tx.getKeys([k0]).then(
      (records) => records.map((r) => r.pubkey),
      (err: unknown) => err,
    );
    // Either the record (read fresh) or a coded refusal; never a silent empty answer.
    if (Array.isArray(read)) expect(read).toEqual([k0]);
    else
      expect(read).toMatchObject({ code: expect.stringMatching(/STORE_CONFLICT|STORE_CORRUPT/) });
  });

  // The same through the allocators: server A's group holds a heartbeat of pod h that reports
  // k0 (unknown to A: read absent), then, while server B derives k0 and k1 for pod r, a release
  // of pod r at A. A's release drops k0 from r's keys without touching k0's record: the store
  // ends with k0 allocated to r, which no longer lists it, and r can never allocate again.
  it('a release in a group that read one of the pod’s keys absent earlier leaves pod and keys agreeing', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const clock = new FakeClock();
    // Lookahead off at A: the heartbeat refuses the unknown key (no proof) and stages nothing.
    const a = allocatorOver(storeA, clock, { keySource: mnemonic, lookahead: 0, reuseDelayMs: 0 });
    const b = allocatorOver(storeB, clock, { keySource: mnemonic, reuseDelayMs: 0 });
    const k0 = mnemonic.pubkeyAt?.(0) ?? '';
    const go = await holdCommitter(storeA);
    const heard = a.heartbeat('h', [k0]);
    let meanwhile: (() => void) | undefined;
    const whileBDerives = GroupCommitter.of(storeA).run(async () => {
      await new Promise<void>((resolve) => {
        meanwhile = resolve;
      });
    });
    const released = a.release('r');
    await go();
    await until(() => meanwhile !== undefined);
    const atB = await b.allocate('r', 2);
    expect(atB.keys.map((k) => k.pubkey)).toContain(k0);
    meanwhile?.();
    await Promise.all([heard, whileBDerives]);
    const gone = await released;
    expect([...gone].sort()).toEqual(atB.keys.map((k) => k.pubkey).sort());
    const { problems } = await checkStore(storeA);
    // And pod r (a new incarnation, same name) gets keys again.
    const again = await within(a.allocate('r', 2), 10_000).catch((err: unknown) => err);
    expect({ problems, again: again instanceof Error ? again.message : 'answered' }).toEqual({
      problems: [],
      again: 'answered',
    });
  });

  // The same kept `undefined` against the pool: remember() keeps the first read of a record,
  // so a pool chunk that lists a key read absent earlier in the group does not replace it, and
  // getKeys drops the key the pool offered. The allocation then makes a new key while a free
  // one sits unused (in send mode: a new 32 ETH deposit).
  it('a free key another server added meanwhile is handed out, not passed over for a new one', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const outcomes: unknown[] = [];
    const a = new Allocator({
      store: storeA,
      group: GroupCommitter.of(storeA),
      clock: storeA.clock,
      monotonic: new FakeClock().monotonic,
      keySource: randomKeySource,
      config: { reuseDelayMs: 0, maxKeysPerPod: 8, maxTotalKeys: undefined },
      onAllocated: (o) => outcomes.push(o),
    });
    const imported = freeKey(storeB, 0x51, storeB.clock() - 1_000);
    const go = await holdCommitter(storeA);
    // A pod reports the key before it reaches the store (say, a keystore imported at B).
    const heard = a.heartbeat('h', [imported.pubkey]);
    let meanwhile: (() => void) | undefined;
    const whileBImports = GroupCommitter.of(storeA).run(
      () =>
        new Promise<void>((resolve) => {
          meanwhile = resolve;
        }),
    );
    const allocated = a.allocate('p', 1);
    await go();
    await until(() => meanwhile !== undefined);
    await storeB.commit({ keys: [{ after: imported }], pods: [] });
    meanwhile?.();
    await Promise.all([heard, whileBImports]);
    const got = (await allocated).keys.map((k) => k.pubkey);
    expect({ got, outcomes }).toEqual({
      got: [imported.pubkey],
      outcomes: [{ pod: 'p', held: 0, reclaimed: 0, reused: 1, created: 0 }],
    });
  });

  // Held: a group whose commit another server overtook runs again on fresh reads (a new
  // Transaction: its pool chunk, key and pod reads are gone), through the key it picked and
  // through the pod it prefetched.
  it('a group overtaken between its reads and its commit runs again on fresh reads', async () => {
    const url = await freshDatabase();
    const storeA = await openServer(url);
    const storeB = await openServer(url);
    const now = storeA.clock();
    // Free keys in one lane only: both servers' reads end there, oldest first.
    const free = [1, 2, 3, 4, 5].map((i) => freeKey(storeA, inLane('7', i), now - 10_000 + i));
    await storeA.commit({ keys: free.map((after) => ({ after })), pods: [] });
    const a = allocatorOver(storeA, new FakeClock(), { reuseDelayMs: 0 });
    const b = allocatorOver(storeB, new FakeClock(), { reuseDelayMs: 0 });
    const go = await holdCommitter(storeA);
    const atA = a.allocate('pa', 1);
    const same = a.allocate('same', 2);
    let meanwhile: (() => void) | undefined;
    let paused: Promise<void> | undefined;
    // Pauses the group's first run only (the group runs again after the conflict).
    const pause = GroupCommitter.of(storeA).run(() => {
      paused ??= new Promise<void>((resolve) => {
        meanwhile = resolve;
      });
      return paused;
    });
    await go();
    await until(() => meanwhile !== undefined);
    // A's group has read and staged both; B takes the oldest key and makes pod `same`.
    const atB = (await b.allocate('pb', 1)).keys.map((k) => k.pubkey);
    const sameAtB = (await b.allocate('same', 2)).keys.map((k) => k.pubkey).sort();
    meanwhile?.();
    await pause;
    const gotA = (await atA).keys.map((k) => k.pubkey);
    const sameAtA = (await same).keys.map((k) => k.pubkey).sort();
    expect(atB).toEqual([free[0]?.pubkey]);
    expect(gotA).not.toEqual(atB);
    expect(sameAtA).toEqual(sameAtB);
    expect((await checkStore(storeA)).problems).toEqual([]);
  });

  // Held: a request that takes keys and then fails gives them back to the rest of its group
  // (its staging is undone; the pool chunk the group keeps still lists them).
  it('keys a failing request of the group took go to the next request of the group', async () => {
    const url = await freshDatabase();
    const store = await openServer(url);
    const now = store.clock();
    const free = [1, 2].map((i) => freeKey(store, inLane('3', i), now - 10_000 + i));
    await store.commit({ keys: free.map((after) => ({ after })), pods: [] });
    const a = allocatorOver(store, new FakeClock(), { reuseDelayMs: 0 });
    const group = GroupCommitter.of(store);
    const go = await holdCommitter(store);
    const failing = group.run(async (tx) => {
      const taken = await tx.oldest('unallocated', 2);
      const records = await tx.getKeys(taken.map((e) => e.pubkey));
      tx.stage({
        keys: records.map((r) => ({ before: r, after: { ...r, state: 'allocated', pod: 'x' } })),
        pods: [],
      });
      throw new Error('fails after staging');
    });
    const next = a.allocate('p', 2);
    await go();
    await expect(failing).rejects.toThrow('fails after staging');
    expect((await next).keys.map((k) => k.pubkey).sort()).toEqual(free.map((k) => k.pubkey));
    expect((await checkStore(store)).problems).toEqual([]);
  });
});
