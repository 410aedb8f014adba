import { describe, expect, it } from 'vitest';
import {
  deposited,
  editPod,
  fenced,
  handedTo,
  inConflict,
  released,
  reportedRunning,
  retired,
  stopConfirmed,
} from '../../src/allocation/transitions.js';
import { type KeyRecord, keyRecordCodec, type PodRecord } from '../../src/store/records.js';

const PK = `0x${'ab'.repeat(48)}`;
const held: KeyRecord = {
  pubkey: PK,
  secret: { alg: 'hex', data: '01' },
  state: 'allocated',
  pod: 'a',
  since: 1,
  createdAt: 1,
  protection: { lastBlockSlot: 7 },
  history: [{ at: 1, event: 'created' }],
};

/** Every record a transition returns is one the store would write. */
const valid = (r: KeyRecord) => expect(() => keyRecordCodec.encode(r)).not.toThrow();

describe('key transitions', () => {
  it('a release keeps what the key carries and records how the stop is known', () => {
    const r = released(held, 'a', 5, 'unconfirmed', 'uid-1');
    expect(r).toMatchObject({ state: 'cooling', pod: 'a', stop: 'unconfirmed', uid: 'uid-1' });
    expect(r.protection).toEqual({ lastBlockSlot: 7 });
    expect(r.history.at(-1)).toEqual({ at: 5, event: 'released', pod: 'a' });
    expect(released(held, 'a', 5, 'fenced', undefined).history.at(-1)?.event).toBe('fenced');
    valid(r);
  });

  it('leaving cooling drops the cooling fields; a confirmation lifts only an unconfirmed stop', () => {
    const cooling = released(held, 'a', 5, 'unconfirmed', 'uid-1');
    const back = handedTo(cooling, 'b', 6, 'allocated');
    expect(back).not.toHaveProperty('stop');
    expect(back).not.toHaveProperty('uid');
    expect(back).toMatchObject({ state: 'allocated', pod: 'b', since: 6 });
    valid(back);
    expect(stopConfirmed(cooling, 7).stop).toBe('confirmed');
    const fence = fenced(cooling, 8, cooling.since);
    expect(fence).toMatchObject({ stop: 'fenced', since: 5, pod: 'a', uid: 'uid-1' });
    expect(stopConfirmed(fence, 9)).toBe(fence);
    valid(fence);
  });

  it('a restore fences a free key with no holder, from now', () => {
    const free: KeyRecord = { ...held, state: 'free', since: 3 };
    const { pod: _p, ...noPod } = free;
    const r = fenced(noPod, 10);
    expect(r).toMatchObject({ state: 'cooling', stop: 'fenced', since: 10 });
    expect(r).not.toHaveProperty('pod');
    valid(r);
  });

  it('conflict, reported, retired and deposited each keep the secret and protection', () => {
    for (const r of [
      inConflict(held, ['a', 'b'], 4),
      reportedRunning({ ...held, state: 'free' }, 'x', 4),
      retired(held, 4),
      deposited(
        (({ pod: _p, ...r }) => ({ ...r, state: 'depositing' as const, depositError: 'x' }))(held),
        4,
      ),
    ]) {
      expect(r.secret).toEqual(held.secret);
      expect(r.protection).toEqual({ lastBlockSlot: 7 });
      expect(r).not.toHaveProperty('depositError');
      valid(r);
    }
    expect(inConflict(held, ['a', 'b'], 4).conflictPods).toEqual(['a', 'b']);
  });
});

describe('pod records', () => {
  const pod: PodRecord = { keys: ['k1', 'k2'], cooling: ['c1'], since: 1, uid: 'uid-1' };

  it('an edit keeps the uid, and deletes a record left with nothing', () => {
    expect(editPod(pod, { drop: ['k1'], cool: ['k1'] }, 2)).toEqual({
      keys: ['k2'],
      cooling: ['c1', 'k1'],
      since: 2,
      uid: 'uid-1',
    });
    expect(editPod(pod, { drop: ['k1', 'k2'], uncool: ['c1'] }, 2)).toBeUndefined();
  });

  it('a new incarnation keeps the UIDs the name had before, so a late word about one is known stale', () => {
    const next = editPod(pod, { uid: 'uid-2' }, 2);
    expect(next).toMatchObject({ uid: 'uid-2', pastUids: ['uid-1'] });
    const unknown = editPod(next, { forgetUid: true }, 3);
    expect(unknown).not.toHaveProperty('uid');
    expect(unknown?.pastUids).toEqual(['uid-1', 'uid-2']);
  });
});
