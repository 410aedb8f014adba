import { describe, expect, it } from 'vitest';
import {
  deposited,
  depositFailed,
  editPod,
  fenced,
  handedTo,
  inConflict,
  movedTo,
  released,
  removedWithProof,
  reportedRunning,
  retired,
  stopConfirmed,
} from '../../src/allocation/transitions.js';
import {
  KEY_RECORD_FIELDS,
  type KeyRecord,
  keyRecordCodec,
  POD_RECORD_FIELDS,
  type PodRecord,
} from '../../src/store/records.js';

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

describe('what a transition keeps', () => {
  // Set by the transition itself, or one state's own (dropped on leaving it).
  const OWN = new Set(['state', 'since', 'history']);
  const ONE_STATE = new Set(['pod', 'stop', 'uid', 'conflictPods', 'depositError', 'leaving']);
  /** A record with every field of the schema set (the first test says so). */
  const full: KeyRecord = {
    pubkey: PK,
    secret: { alg: 'aes-256-gcm', data: 'ab', kek: 'k1' },
    state: 'cooling',
    pod: 'a',
    stop: 'confirmed',
    uid: 'uid-1',
    since: 2,
    createdAt: 1,
    path: 'm/12381/3600/0/0/0',
    deposit: {
      pubkey: PK,
      withdrawalCredentials: `0x${'01'.repeat(32)}`,
      amount: 32_000_000_000,
      signature: `0x${'cd'.repeat(96)}`,
      depositMessageRoot: `0x${'02'.repeat(32)}`,
      depositDataRoot: `0x${'03'.repeat(32)}`,
      forkVersion: '0x00000000',
      networkName: 'hoodi',
    },
    tx: { hash: `0x${'04'.repeat(32)}`, nonce: 3, raw: '0x05', sentAt: 1 },
    depositError: 'nonce too low',
    protection: { lastBlockSlot: 7 },
    conflictPods: ['b'],
    heldUntil: 9,
    leaving: { since: 1, to: 'c' },
    settings: { graffiti: 'pkm' },
    history: [{ at: 1, event: 'created' }],
  };

  it('the record used here has every field the schema knows', () => {
    for (const field of KEY_RECORD_FIELDS) expect(full).toHaveProperty(field);
  });

  const transitions: Array<[string, (r: KeyRecord) => KeyRecord]> = [
    ['handedTo', (r) => handedTo(r, 'b', 5, 'allocated')],
    ['released', (r) => released(r, 'b', 5, 'confirmed', undefined)],
    ['fenced', (r) => fenced(r, 5)],
    ['retired', (r) => retired(r, 5)],
    ['inConflict', (r) => inConflict(r, ['d'], 5)],
    ['reportedRunning', (r) => reportedRunning(r, 'b', 5)],
    ['movedTo', (r) => movedTo(r, 'b', 5)],
    ['removedWithProof', (r) => removedWithProof(r, 5)],
    ['deposited', (r) => deposited(r, 5)],
    ['depositFailed', (r) => depositFailed(r, 'reverted', 5)],
  ];
  it.each(transitions)('%s keeps every field no state owns, as it is', (_, transition) => {
    const after = new Map(Object.entries(transition(full)));
    const before = new Map(Object.entries(full));
    for (const field of KEY_RECORD_FIELDS)
      if (!OWN.has(field) && !ONE_STATE.has(field))
        expect(after.get(field), field).toBe(before.get(field));
  });
});

describe('what a pod edit keeps', () => {
  const full: PodRecord = {
    keys: [PK],
    cooling: [`0x${'cd'.repeat(48)}`],
    reported: [`0x${'ef'.repeat(48)}`],
    since: 1,
    uid: 'uid-2',
    pastUids: ['uid-1'],
  };

  it('the record used here has every field the schema knows', () => {
    for (const field of POD_RECORD_FIELDS) expect(full).toHaveProperty(field);
  });

  it('an edit that changes nothing keeps every field but the time', () => {
    expect(editPod(full, {}, 9)).toStrictEqual({ ...full, since: 9 });
  });
});
