// Random valid change sequences for the conformance suite: each step reads the store through
// the contract and commits what the key lifecycle allows (create, allocate, release, reclaim,
// retire), plus invalid changes that must be refused whole. The store derives its indexes and
// counters itself, so after any sequence `checkStore` must find nothing.
import fc from 'fast-check';
import { expect } from 'vitest';
import type { StoreContract } from '../../src/store/contract.js';
import type { KeyRecord, PodRecord } from '../../src/store/records.js';
import { freeKey } from './conformance-support.js';

export type Step =
  | { op: 'create'; t: number; derived: boolean }
  | { op: 'allocate'; pod: number; t: number }
  | { op: 'release'; pod: number; t: number; fenced: boolean }
  | { op: 'reclaim'; t: number }
  | { op: 'retire'; t: number }
  | { op: 'broken'; t: number };

const time = fc.nat(10_000);
const podNo = fc.nat(2);
// Weighted toward creating and allocating, so sequences reach pods with several keys.
export const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('create' as const), t: time, derived: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('allocate' as const), pod: podNo, t: time }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('release' as const),
      pod: podNo,
      t: time,
      fenced: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reclaim' as const), t: time }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retire' as const), t: time }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('broken' as const), t: time }) },
);

const emptyPod = (r: PodRecord) =>
  r.keys.length === 0 && r.cooling.length === 0 && (r.reported ?? []).length === 0;

/** Applies one step; `made` counts the keys created so far (their numbers). */
export async function apply(store: StoreContract, s: Step, made: { n: number }): Promise<void> {
  if (s.op === 'create') {
    const index = store.nextKeyIndex();
    const r = freeKey(store, ++made.n, s.t);
    const after = s.derived ? { ...r, path: `m/12381/3600/${index}/0/0` } : r;
    await store.commit({
      keys: [{ after }],
      pods: [],
      ...(s.derived ? { nextKeyIndex: index + 1 } : {}),
      events: [{ at: s.t, type: 'import', pubkeys: [r.pubkey] }],
    });
    return;
  }
  if (s.op === 'broken') {
    // A valid key beside an allocated one that names no pod: nothing of it may be written.
    const good = freeKey(store, 100_000 + made.n, s.t);
    const bad: KeyRecord = { ...freeKey(store, 200_000 + made.n, s.t), state: 'allocated' };
    await expect(
      store.commit({ keys: [{ after: good }, { after: bad }], pods: [] }),
    ).rejects.toThrow();
    expect(await store.getKey(good.pubkey)).toBeUndefined();
    return;
  }
  if (s.op === 'allocate' || s.op === 'retire') {
    const [entry] = await store.oldest('unallocated', 1);
    if (!entry) return;
    const [before] = await store.getKeys([entry.pubkey]);
    if (!before) return;
    if (s.op === 'retire') {
      await store.commit({
        keys: [{ before, after: { ...before, state: 'retired', since: s.t } }],
        pods: [],
      });
      return;
    }
    const name = `pod-${s.pod}`;
    const had = await store.getPod(name);
    const after: KeyRecord = { ...before, state: 'allocated', pod: name, since: s.t };
    const podAfter = {
      ...(had ?? { keys: [], cooling: [] }),
      keys: [...(had?.keys ?? []), before.pubkey],
      since: s.t,
    };
    await store.commit({
      keys: [{ before, after }],
      pods: [{ name, ...(had ? { before: had } : {}), after: podAfter }],
      events: [{ at: s.t, type: 'allocate', pod: name, pubkeys: [before.pubkey] }],
    });
    return;
  }
  if (s.op === 'release') {
    const name = `pod-${s.pod}`;
    const had = await store.getPod(name);
    const pubkey = had?.keys[0];
    if (!had || pubkey === undefined) return;
    const [before] = await store.getKeys([pubkey]);
    if (!before) return;
    const after: KeyRecord = {
      ...before,
      state: 'cooling',
      since: s.t,
      stop: s.fenced ? 'fenced' : 'unconfirmed',
    };
    await store.commit({
      keys: [{ before, after }],
      pods: [
        {
          name,
          before: had,
          after: { ...had, keys: had.keys.slice(1), cooling: [...had.cooling, pubkey], since: s.t },
        },
      ],
      events: [{ at: s.t, type: 'release', pod: name, pubkeys: [pubkey] }],
    });
    return;
  }
  const [entry] = await store.oldest('cooling', 1, s.t);
  if (!entry) return;
  const [before] = await store.getKeys([entry.pubkey]);
  if (!before?.pod) return;
  const had = await store.getPod(before.pod);
  if (!had) return;
  const podAfter = { ...had, cooling: had.cooling.filter((pk) => pk !== before.pubkey) };
  const { pod: _pod, stop: _stop, uid: _uid, ...rest } = before;
  await store.commit({
    keys: [{ before, after: { ...rest, state: 'free', since: s.t } }],
    pods: [{ name: before.pod, before: had, ...(emptyPod(podAfter) ? {} : { after: podAfter }) }],
    events: [{ at: s.t, type: 'reuse', pubkeys: [before.pubkey] }],
  });
}
