import { describe, expect, it } from 'vitest';
import { parseTimeIndexKey, timeIndexKey, timeUpperBound } from '../../src/store/buckets.js';
import { gcmCodec } from '../../src/store/encryption.js';
import {
  countsCodec,
  HISTORY_LIMIT,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
  withEvent,
} from '../../src/store/records.js';

const codec = gcmCodec(Buffer.alloc(32, 1), 'test-kek');

const PK = `0x${'ab'.repeat(48)}`;
const record: KeyRecord = {
  pubkey: PK,
  secret: codec.seal(new Uint8Array(32).fill(7), `0x${'ab'.repeat(48)}`),
  state: 'cooling',
  pod: 'validator-0',
  since: 1_700_000_000_000,
  createdAt: 1_600_000_000_000,
  path: 'm/12381/3600/0/0/0',
  history: [{ at: 1, event: 'created' }],
};

describe('store codecs', () => {
  it('round-trips a key record, a pod record and the counters', () => {
    expect(keyRecordCodec.decode(keyRecordCodec.encode(record))).toEqual(record);
    const pod: PodRecord = { keys: [PK], cooling: [], since: 5 };
    expect(podRecordCodec.decode(podRecordCodec.encode(pod))).toEqual(pod);
    const counts = {
      free: 1,
      allocated: 2,
      cooling: 3,
      retired: 4,
      depositing: 5,
      'deposit-failed': 6,
      conflict: 8,
      reported: 9,
      fenced: 2,
      pods: 7,
    };
    expect(countsCodec.decode(countsCodec.encode(counts))).toEqual(counts);
  });

  it('round-trips a secret through the secret codec', () => {
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    const pk = `0x${'cd'.repeat(48)}`;
    expect(codec.open(codec.seal(secret, pk), pk)).toEqual(secret);
  });

  it('refuses to write a record that breaks its shape', () => {
    const { pod: _pod, ...noPod } = record;
    expect(() => keyRecordCodec.encode(noPod)).toThrow(/invalid key record/);
    expect(() => keyRecordCodec.encode({ ...record, pubkey: '0x1234' })).toThrow(
      /invalid key record/,
    );
  });

  it('reports a damaged stored value as STORE_CORRUPT', () => {
    expect(() => keyRecordCodec.decode('{not json')).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT' }),
    );
    expect(() => podRecordCodec.decode('{"keys":[]}')).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT' }),
    );
  });

  it('orders time index keys by time, then pubkey, and bounds them by time', () => {
    const early = timeIndexKey(9_000, PK);
    const late = timeIndexKey(10_000, PK);
    expect(early < late).toBe(true);
    expect(early <= timeUpperBound(9_000)).toBe(true);
    expect(late <= timeUpperBound(9_999)).toBe(false);
    expect(parseTimeIndexKey(late)).toEqual({ since: 10_000, pubkey: PK });
    // The bytes stores on disk already hold: 16 decimal digits, '!', the pubkey.
    expect(late).toBe(`0000000000010000!${PK}`);
  });

  it('keeps only the newest history events', () => {
    let history = record.history;
    for (let i = 0; i < HISTORY_LIMIT + 5; i++)
      history = withEvent(history, { at: i + 10, event: 'allocated' });
    expect(history).toHaveLength(HISTORY_LIMIT);
    expect(history.at(-1)?.at).toBe(HISTORY_LIMIT + 14);
  });
});
