// Live key moves over the store (issue 16, points 1 to 3 and 5), on both backends: counts that
// change, moves and rebalances mark keys leaving; only the holder's removal report lets a key
// go, at once with proof, through cooling without.
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { podKeysNow } from '../../src/allocation/leaving.js';
import { KeyMoves } from '../../src/allocation/moves.js';
import { parseSelector } from '../../src/allocation/rebalance-plan.js';
import type { RemovalReport } from '../../src/allocation/removal.js';
import type { BeaconGate, ValidatorView } from '../../src/beacon/liveness.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import { randomKeySource } from '../../src/keys/source.js';
import { checkStore } from '../../src/store/check.js';
import type { StoreContract } from '../../src/store/contract.js';
import { FakeClock, MINUTE } from '../helpers.js';
import { allocatorOver, DELAY, pubkeys } from '../support/allocator.js';
import { eachBackend } from '../support/backends.js';
import { interchangeFor } from '../support/interchange.js';
import { watchOpens } from '../support/opened-secrets.js';

const ROOT = `0x${'ab'.repeat(32)}`;
const GENESIS = Date.UTC(2020, 11, 1) / 1000;
const FEE = '0x1111111111111111111111111111111111111111';

/** An interchange whose entries hold no signing at all (what a never-active key gives). */
const empty = (pubkeys: readonly string[], root = ROOT) => ({
  metadata: { interchange_format_version: '5', genesis_validators_root: root },
  data: pubkeys.map((pubkey) => ({ pubkey, signed_blocks: [], signed_attestations: [] })),
});

const deleted = (pks: readonly string[], extra: Partial<RemovalReport> = {}): RemovalReport[] =>
  pks.map((pubkey) => ({ pubkey, status: 'deleted', ...extra }));

function setUp(
  store: StoreContract,
  opts: { genesis?: boolean; liveness?: BeaconGate; maxKeysPerPod?: number } = {},
) {
  const clock = new FakeClock();
  const beacon = {
    genesisValidatorsRoot: ROOT,
    ...(opts.genesis === false ? {} : { genesisTime: GENESIS }),
  };
  const allocator = allocatorOver(store, clock, randomKeySource, {
    beacon,
    ...(opts.liveness ? { liveness: opts.liveness } : {}),
    ...(opts.maxKeysPerPod
      ? {
          config: {
            reuseDelayMs: DELAY,
            maxKeysPerPod: opts.maxKeysPerPod,
            maxTotalKeys: undefined,
          },
        }
      : {}),
  });
  const moves = new KeyMoves({
    store,
    group: GroupCommitter.of(store),
    clock: clock.now,
    allocator,
    beacon,
    ...(opts.liveness ? { liveness: opts.liveness } : {}),
  });
  return { clock, allocator, moves };
}

/** A gate that answers every key with `view` (or throws, for a node that cannot answer). */
function gate(view: ValidatorView | 'fails'): BeaconGate {
  const statuses = async (pks: readonly string[]) => {
    if (view === 'fails') throw new Error('node away');
    return new Map(pks.map((pk) => [pk, view]));
  };
  return { statuses, live: async () => [], indices: async () => new Map() };
}

eachBackend((backend) => {
  describe('a smaller count', () => {
    it('marks the keys handed out last as leaving: the pod still holds them, no other pod gets them', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 4));
      const after = await moves.setCount('a', 2);
      expect(after).toEqual({ pod: 'a', keys: a.slice(0, 2), leaving: a.slice(2) });
      expect((await store.getPod('a'))?.keys).toEqual(a);
      const b = pubkeys(await allocator.allocate('b', 4));
      expect(b.filter((k) => a.includes(k))).toEqual([]);
      const view = await moves.assignment('a', new Set(a));
      expect(view.keys.map((k) => [k.pubkey, k.leaving, k.key])).toEqual([
        [a[0], undefined, undefined],
        [a[1], undefined, undefined],
        [a[2], {}, undefined],
        [a[3], {}, undefined],
      ]);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('a removal with proof frees the key at once: the next pod gets it without the reuse delay, with the history and a fence', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 3));
      const gone = a[2] ?? '';
      await moves.setCount('a', 2);
      const results = await moves.recordRemovals(
        'a',
        deleted([gone], { settings: { feeRecipient: FEE, graffiti: 'pkm' } }),
        interchangeFor(ROOT, [gone], 640),
      );
      expect(results).toEqual([{ pubkey: gone, outcome: 'freed' }]);
      expect(await store.getKey(gone)).toMatchObject({
        state: 'free',
        protection: { lastBlockSlot: 640, lastTargetEpoch: 2 },
        settings: { feeRecipient: FEE, graffiti: 'pkm' },
      });
      expect((await store.getPod('a'))?.keys).toEqual(a.slice(0, 2));
      const b = await allocator.allocate('b', 1);
      expect(pubkeys(b)).toEqual([gone]);
      // A fence at the current slot (2026 is far past slot 640) and the VC's history.
      expect(b.keys[0]?.protection?.lastBlockSlot).toBeGreaterThan(640);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('a larger count again keeps the keys that were leaving before it takes new ones', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 4));
      await moves.setCount('a', 1);
      const after = await moves.setCount('a', 5);
      expect(after.leaving).toEqual([]);
      expect(after.keys.slice(0, 4)).toEqual(a);
      expect(after.keys).toHaveLength(5);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('a count for a pod that holds nothing gives it its first keys (no init container needed)', async () => {
      const store = await backend.open();
      const { moves } = setUp(store);
      const first = await moves.setCount('new-pod', 2);
      expect(first.keys).toHaveLength(2);
      expect(first.leaving).toEqual([]);
      expect((await store.getPod('new-pod'))?.keys).toEqual(first.keys);
      expect(await moves.setCount('nobody', 0)).toEqual({ pod: 'nobody', keys: [], leaving: [] });
      expect(await store.getPod('nobody')).toBeUndefined();
    });

    it('a larger count opens no secret itself: the pod gets them from its assignment', async () => {
      const { store, opened } = watchOpens(await backend.open());
      const { moves } = setUp(store);
      const grown = await moves.setCount('new-pod', 2);
      expect(grown.keys).toHaveLength(2);
      expect(opened.arrays).toEqual([]);
      // Its agent's assignment opens them, and they are the pod's keys' secrets.
      const assigned = await moves.assignment('new-pod', new Set());
      expect(assigned.keys.map((k) => k.pubkey).sort()).toEqual([...grown.keys].sort());
      expect(opened.arrays).toHaveLength(1);
      for (const { pubkey, key } of assigned.keys) {
        if (!key) throw new Error(`no secret for ${pubkey}`);
        expect(publicKeyOf(key.secretKey)).toBe(pubkey);
      }
    });

    it('a count out of range, or past the room the leaving keys leave, changes nothing', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store, { maxKeysPerPod: 4 });
      await allocator.allocate('a', 4);
      await moves.move('a', 'b', 2);
      const before = await store.getPod('a');
      await expect(moves.setCount('a', 5)).rejects.toMatchObject({ code: 'COUNT_OUT_OF_RANGE' });
      await expect(moves.setCount('a', -1)).rejects.toMatchObject({ code: 'COUNT_OUT_OF_RANGE' });
      await expect(moves.setCount('a', 1.5)).rejects.toMatchObject({ code: 'COUNT_OUT_OF_RANGE' });
      // 2 assigned, 2 leaving to b: 4 would need 2 more keys beside the 2 on their way out.
      await expect(moves.setCount('a', 4)).rejects.toMatchObject({ code: 'COUNT_OUT_OF_RANGE' });
      expect(await store.getPod('a')).toEqual(before);
    });
  });

  describe('a move', () => {
    it('hands each key to the destination in the commit that records its proof; the destination gets its secret, history and settings', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 3));
      const b = pubkeys(await allocator.allocate('b', 1));
      const moved = await moves.move('a', 'b', 2);
      expect(moved).toEqual({ from: 'a', to: 'b', keys: a.slice(1) });
      // Until a's agent reports them gone, b is not handed them.
      const early = await moves.assignment('b', new Set(b));
      expect(early.keys.map((k) => k.pubkey)).toEqual(b);
      const results = await moves.recordRemovals(
        'a',
        [
          {
            pubkey: a[1] ?? '',
            status: 'deleted',
            settings: { feeRecipient: FEE, gasLimit: '36000000' },
          },
          { pubkey: a[2] ?? '', status: 'not_active' },
        ],
        interchangeFor(ROOT, moved.keys),
      );
      expect(results).toEqual(moved.keys.map((pubkey) => ({ pubkey, outcome: 'moved', to: 'b' })));
      expect((await store.getPod('a'))?.keys).toEqual([a[0]]);
      expect((await store.getPod('b'))?.keys).toEqual([...b, ...moved.keys]);
      const view = await moves.assignment('b', new Set(b));
      const incoming = view.keys.filter((k) => k.key !== undefined);
      expect(incoming.map((k) => k.pubkey)).toEqual(moved.keys);
      expect(incoming[0]?.settings).toEqual({ feeRecipient: FEE, gasLimit: '36000000' });
      expect(incoming[0]?.key?.protection?.lastTargetEpoch).toBeGreaterThanOrEqual(2);
      expect(view.genesisValidatorsRoot).toBe(ROOT);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it("the agent's view, read outside the lock, keeps only keys whose own record is the pod's (a release between its two reads)", async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 2));
      const listed = await store.getPod('a');
      await allocator.release('a');
      // The pod's list as read just before the release, beside the keys as they are now.
      const reads = {
        getPod: async () => listed,
        getKeys: (pks: readonly string[]) => store.getKeys(pks),
      };
      expect(await podKeysNow(reads, 'a')).toMatchObject({ assigned: [], leaving: [] });
      expect((await moves.assignment('a', new Set())).keys).toEqual([]);
      expect(a).toHaveLength(2);
    });

    it('a report sent again (its answer lost) changes nothing twice', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 2));
      await allocator.allocate('b', 1);
      await moves.move('a', 'b', 1);
      const report = deleted([a[1] ?? '']);
      await moves.recordRemovals('a', report, interchangeFor(ROOT, [a[1] ?? '']));
      const b = await store.getPod('b');
      const again = await moves.recordRemovals('a', report, interchangeFor(ROOT, [a[1] ?? '']));
      expect(again).toEqual([{ pubkey: a[1], outcome: 'not-held' }]);
      expect(await store.getPod('b')).toEqual(b);
    });

    it('a key the VC could not delete stays leaving; one it does not know cools (no proof)', async () => {
      const store = await backend.open();
      const { allocator, moves, clock } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 3));
      await allocator.allocate('b', 1);
      await moves.move('a', 'b', 2);
      const results = await moves.recordRemovals(
        'a',
        [
          { pubkey: a[1] ?? '', status: 'error' },
          { pubkey: a[2] ?? '', status: 'not_found' },
        ],
        empty([]),
      );
      expect(results.map((r) => r.outcome)).toEqual(['leaving', 'cooling']);
      expect(await store.getKey(a[1] ?? '')).toMatchObject({
        state: 'allocated',
        pod: 'a',
        leaving: { to: 'b' },
      });
      expect(await store.getKey(a[2] ?? '')).toMatchObject({
        state: 'cooling',
        pod: 'a',
        stop: 'unconfirmed',
      });
      // The cooling key goes to no pod before the reuse delay: c gets a new one.
      expect(pubkeys(await allocator.allocate('c', 1))).not.toContain(a[2]);
      clock.advance(DELAY);
      expect(pubkeys(await allocator.allocate('d', 1))).toEqual([a[2]]);
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });

  describe('the proof (Prysm #17408)', () => {
    it('an empty record for a key with history on record is no proof: it cools', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 2));
      await allocator.uploadProtection('a', interchangeFor(ROOT, a, 64), 'admin');
      await allocator.allocate('b', 1);
      await moves.move('a', 'b', 1);
      const [result] = await moves.recordRemovals('a', deleted([a[1] ?? '']), empty([a[1] ?? '']));
      expect(result).toMatchObject({ outcome: 'cooling', why: expect.stringContaining('#17408') });
      expect((await store.getPod('b'))?.keys).not.toContain(a[1]);
    });

    it('a record below the one on file is no proof', async () => {
      const store = await backend.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 2));
      await allocator.uploadProtection('a', interchangeFor(ROOT, a, 6400), 'admin');
      await moves.setCount('a', 1);
      const [result] = await moves.recordRemovals(
        'a',
        deleted([a[1] ?? '']),
        interchangeFor(ROOT, [a[1] ?? ''], 64),
      );
      expect(result?.outcome).toBe('cooling');
      // Its history is still merged: what moves on is the stricter of both.
      expect((await store.getKey(a[1] ?? ''))?.protection?.lastBlockSlot).toBe(6400);
    });

    it('a key never active: deleted with no history is proof, with a genesis time to fence its next holder; not without', async () => {
      for (const genesis of [true, false]) {
        const store = await backend.open();
        const { allocator, moves } = setUp(store, { genesis });
        const a = pubkeys(await allocator.allocate('a', 2));
        await moves.setCount('a', 1);
        const [result] = await moves.recordRemovals('a', deleted([a[1] ?? '']), empty([]));
        expect([genesis, result?.outcome]).toEqual([genesis, genesis ? 'freed' : 'cooling']);
      }
    });

    it('with --beacon-url, a key the chain shows active (or a gate that cannot answer) needs history', async () => {
      const active: ValidatorView = {
        kind: 'not-live',
        index: '7',
        status: 'active_ongoing',
        slashed: false,
        live: false,
      };
      const pending: ValidatorView = { ...active, status: 'pending_queued' };
      const cases = [
        [active, 'cooling'],
        ['fails', 'cooling'],
        [pending, 'freed'],
        [{ kind: 'absent' }, 'freed'],
      ] as const;
      for (const [view, outcome] of cases) {
        const store = await backend.open();
        const { allocator, moves } = setUp(store, { liveness: gate(view) });
        const a = pubkeys(await allocator.allocate('a', 2));
        await moves.setCount('a', 1);
        const [result] = await moves.recordRemovals(
          'a',
          deleted([a[1] ?? '']),
          empty([a[1] ?? '']),
        );
        expect([view, result?.outcome]).toEqual([view, outcome]);
      }
    });

    it('an interchange of another chain is refused and changes nothing', async () => {
      const place = await backend.place();
      const store = await place.open();
      const { allocator, moves } = setUp(store);
      const a = pubkeys(await allocator.allocate('a', 2));
      await moves.setCount('a', 1);
      const raw = await place.raw();
      await expect(
        moves.recordRemovals('a', deleted([a[1] ?? '']), interchangeFor(`0x${'cd'.repeat(32)}`, a)),
      ).rejects.toMatchObject({ code: 'INTERCHANGE_MISMATCH' });
      await expect(
        moves.recordRemovals('a', deleted([a[1] ?? '']), { no: 1 }),
      ).rejects.toMatchObject({ code: 'INVALID_INTERCHANGE' });
      expect(await place.raw()).toEqual(raw);
    });
  });

  describe('a rebalance', () => {
    it('evens the keys out over the selected pods, counting moves under way, in one commit', async () => {
      const store = await backend.open();
      const { allocator, moves, clock } = setUp(store);
      await allocator.allocate('validator-0', 6);
      await allocator.allocate('validator-1', 1);
      await allocator.allocate('other', 3);
      clock.advance(MINUTE);
      const { moves: planned } = await moves.rebalance(parseSelector('validator-*,validator-2'));
      expect(planned.map(({ from, to, keys }) => [from, to, keys.length])).toEqual([
        ['validator-0', 'validator-1', 1],
        ['validator-0', 'validator-2', 2],
      ]);
      // Run again before anything arrived: the moves under way count as done.
      const again = await moves.rebalance(parseSelector('validator-*,validator-2'));
      expect(again.moves).toEqual([]);
      await expect(moves.rebalance(parseSelector('nothing-*'))).rejects.toMatchObject({
        code: 'NO_PODS_SELECTED',
      });
      expect(() => parseSelector('Bad Name')).toThrow(/selector/);
    });
  });
});
