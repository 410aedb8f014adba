// Every codec of the store, round-tripped over generated values (fast-check): what is written
// reads back equal, whatever the state, the optional fields or the numbers, and the encoded
// form of what the codec refuses to write never reaches the store.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AuditEvent, decodeEvent, encodeEvent } from '../../src/store/audit.js';
import { parseTimeIndexKey, timeIndexKey } from '../../src/store/buckets.js';
import { gcmCodec, kekId } from '../../src/store/encryption.js';
import { dataKeyCodec, nextDataKeyCodec } from '../../src/store/encryption-setup.js';
import {
  type Counts,
  countsCodec,
  HISTORY_LIMIT,
  type KeyRecord,
  keyRecordCodec,
  type PodRecord,
  podRecordCodec,
} from '../../src/store/records.js';

const RUNS = { numRuns: 200 };

const hex = (bytes: number) =>
  fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString('hex'));
const pubkey = hex(48).map((h) => `0x${h}`);
const ms = fc.nat({ max: 2 ** 45 });
const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/);

/** What every record may carry, whatever its state. */
const common = fc.record(
  {
    pubkey,
    since: ms,
    createdAt: ms,
    secret: fc.record(
      { alg: fc.constant('aes-256-gcm'), data: hex(60), kek: hex(8) },
      { requiredKeys: ['alg', 'data'] },
    ),
    path: fc.nat({ max: 10_000 }).map((i) => `m/12381/3600/${i}/0/0`),
    deposit: fc.record({
      pubkey: hex(48).map((h) => `0x${h}`),
      withdrawalCredentials: hex(32).map((h) => `0x${h}`),
      amount: fc.integer({ min: 1, max: 2048 * 10 ** 9 }),
      signature: hex(96).map((h) => `0x${h}`),
      depositMessageRoot: hex(32).map((h) => `0x${h}`),
      depositDataRoot: hex(32).map((h) => `0x${h}`),
      forkVersion: hex(4).map((h) => `0x${h}`),
      networkName: fc.constantFrom('mainnet', 'hoodi', 'sepolia'),
    }),
    protection: fc.record(
      { lastBlockSlot: ms, lastSourceEpoch: ms, lastTargetEpoch: ms },
      { requiredKeys: [] },
    ),
    history: fc.array(
      fc.record(
        {
          at: ms,
          event: fc.constantFrom('created', 'allocated', 'released', 'fenced', 'reported'),
          pod: name,
        },
        { requiredKeys: ['at', 'event'] },
      ),
      { maxLength: HISTORY_LIMIT },
    ),
  },
  { requiredKeys: ['pubkey', 'since', 'createdAt', 'secret', 'history'] },
);

/** The fields one state asks for, and no others (records.ts's refinements). */
const byState: fc.Arbitrary<Partial<KeyRecord> & Pick<KeyRecord, 'state'>> = fc.oneof(
  fc.constantFrom('free', 'retired', 'conflict').map((state) => ({ state })),
  name.map((pod) => ({ state: 'allocated' as const, pod })),
  name.map((pod) => ({ state: 'reported' as const, pod })),
  fc.record(
    {
      state: fc.constant('cooling' as const),
      pod: name,
      stop: fc.constantFrom('confirmed', 'unconfirmed', 'fenced'),
      uid: fc.uuid(),
    },
    { requiredKeys: ['state', 'pod'] },
  ),
  fc.constant({ state: 'cooling' as const, stop: 'fenced' as const }),
  fc.record({
    state: fc.constant('depositing' as const),
    tx: fc.record({
      hash: hex(32).map((h) => `0x${h}`),
      nonce: fc.nat(),
      raw: hex(120).map((h) => `0x${h}`),
      sentAt: ms,
    }),
  }),
  fc.record({ state: fc.constant('deposit-failed' as const), depositError: fc.string() }),
);

const keyRecord: fc.Arbitrary<KeyRecord> = fc
  .tuple(common, byState)
  .map(([base, state]) => ({ ...base, ...state }));

const podRecord: fc.Arbitrary<PodRecord> = fc.record(
  {
    keys: fc.array(pubkey, { maxLength: 4 }),
    cooling: fc.array(pubkey, { maxLength: 4 }),
    reported: fc.array(pubkey, { maxLength: 4 }),
    since: ms,
    uid: fc.uuid(),
    pastUids: fc.array(fc.uuid(), { maxLength: 8 }),
  },
  { requiredKeys: ['keys', 'cooling', 'since'] },
);

const count = fc.nat({ max: 1_000_000 });
const counts: fc.Arbitrary<Counts> = fc.record({
  free: count,
  allocated: count,
  cooling: count,
  retired: count,
  depositing: count,
  'deposit-failed': count,
  conflict: count,
  reported: count,
  fenced: count,
  pods: count,
});

const auditEvent: fc.Arbitrary<AuditEvent> = fc.record(
  {
    seq: fc.nat(),
    at: ms,
    type: fc.constantFrom('allocate', 'release', 'fence', 'kek-rotation', 'skip'),
    pod: name,
    pubkeys: fc.array(pubkey, { maxLength: 3 }),
    detail: fc.string(),
  },
  { requiredKeys: ['seq', 'at', 'type', 'pubkeys'] },
);

const wrappedKey = fc.record({ kek: hex(8), data: hex(60) });

describe('store codecs round-trip', () => {
  it('key records, in every state, with every optional field present or not', () => {
    fc.assert(
      fc.property(keyRecord, (r) => {
        expect(keyRecordCodec.decode(keyRecordCodec.encode(r))).toEqual(r);
      }),
      RUNS,
    );
  });

  it('pod records', () => {
    fc.assert(
      fc.property(podRecord, (p) => {
        expect(podRecordCodec.decode(podRecordCodec.encode(p))).toEqual(p);
      }),
      RUNS,
    );
  });

  it('the counters', () => {
    fc.assert(
      fc.property(counts, (c) => {
        expect(countsCodec.decode(countsCodec.encode(c))).toEqual(c);
      }),
      RUNS,
    );
  });

  it('audit events', () => {
    fc.assert(
      fc.property(auditEvent, (e) => {
        expect(decodeEvent(encodeEvent(e))).toEqual(e);
      }),
      RUNS,
    );
  });

  it('time index keys, in the order of time then pubkey', () => {
    fc.assert(
      fc.property(ms, pubkey, ms, pubkey, (t1, pk1, t2, pk2) => {
        const a = timeIndexKey(t1, pk1);
        const b = timeIndexKey(t2, pk2);
        expect(parseTimeIndexKey(a)).toEqual({ since: t1, pubkey: pk1 });
        const order = t1 - t2 || (pk1 < pk2 ? -1 : pk1 > pk2 ? 1 : 0);
        expect(Math.sign(a < b ? -1 : a > b ? 1 : 0)).toBe(Math.sign(order));
      }),
      RUNS,
    );
  });

  it('the wrapped data keys in meta', () => {
    fc.assert(
      fc.property(wrappedKey, wrappedKey, (current, previous) => {
        expect(dataKeyCodec.decode(dataKeyCodec.encode(current))).toEqual(current);
        const next = { current, previous };
        expect(nextDataKeyCodec.decode(nextDataKeyCodec.encode(next))).toEqual(next);
      }),
      RUNS,
    );
    expect(() => dataKeyCodec.decode('{"kek":1}')).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT' }),
    );
  });

  it('sealed secrets: they open under their own pubkey only', () => {
    const dek = Buffer.alloc(32, 9);
    const codec = gcmCodec(dek, kekId(Buffer.alloc(32, 3)));
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        pubkey,
        pubkey,
        (s, pk, other) => {
          const sealed = codec.seal(s, pk);
          expect(codec.open(sealed, pk)).toEqual(s);
          if (other !== pk) expect(() => codec.open(sealed, other)).toThrow();
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('what a write refuses (the read refuses it too)', () => {
  type Loose = Record<string, unknown>;
  /** A test of one way to break a valid value: the write refuses it, and so would the read. */
  function refusedByBoth<T>(
    valid: fc.Arbitrary<T>,
    encode: (value: T) => string,
    decode: (text: string) => unknown,
    refusal: RegExp,
  ) {
    return (_: string, breakIt: (value: T) => Loose) =>
      fc.assert(
        fc.property(valid, (value) => {
          const broken = breakIt(value) as unknown as T;
          expect(() => encode(broken)).toThrow(refusal);
          expect(() => decode(JSON.stringify(broken))).toThrow(
            expect.objectContaining({ code: 'STORE_CORRUPT' }),
          );
        }),
        { numRuns: 25 },
      );
  }
  const event = (over: Loose) => ({ at: 1, event: 'created', ...over });
  /** Ways a key record can break: each one a change of a valid record. */
  const keyBreaks: ReadonlyArray<readonly [string, (r: KeyRecord) => Loose]> = [
    ['a NaN since', (r) => ({ ...r, since: Number.NaN })],
    ['a negative since', (r) => ({ ...r, since: -1 })],
    ['a fractional createdAt', (r) => ({ ...r, createdAt: 1.5 })],
    ['a fractional heldUntil', (r) => ({ ...r, heldUntil: 2.5 })],
    ['an unknown state', (r) => ({ ...r, state: 'bogus' })],
    ['an unknown stop', (r) => ({ ...r, state: 'cooling', pod: 'p', stop: 'later' })],
    ['an upper-case pubkey', (r) => ({ ...r, pubkey: r.pubkey.toUpperCase() })],
    ['a short pubkey', (r) => ({ ...r, pubkey: '0x1234' })],
    ['an empty pod name', (r) => ({ ...r, state: 'allocated', pod: '' })],
    ['an unknown field', (r) => ({ ...r, owner: 'x' })],
    [
      'a history over the limit',
      (r) => ({ ...r, history: Array.from({ length: HISTORY_LIMIT + 1 }, () => event({})) }),
    ],
    ['an event at a negative time', (r) => ({ ...r, history: [event({ at: -1 })] })],
    ['an unknown event', (r) => ({ ...r, history: [event({ event: 'teleported' })] })],
    ['an event with an unknown field', (r) => ({ ...r, history: [event({ by: 'x' })] })],
    ['a secret of no algorithm', (r) => ({ ...r, secret: { alg: '', data: 'ab' } })],
    ['a secret with an unknown field', (r) => ({ ...r, secret: { alg: 'hex', data: 'ab', x: 1 } })],
    ['malformed deposit data', (r) => ({ ...r, deposit: { amount: 1 } })],
    ['a negative protected slot', (r) => ({ ...r, protection: { lastBlockSlot: -3 } })],
    ['a leaving time that is not one', (r) => ({ ...r, leaving: { since: Number.NaN } })],
    ['an allocated key of no pod', (r) => ({ ...r, state: 'allocated', pod: undefined })],
    ['a pod name that is a number', (r) => ({ ...r, state: 'allocated', pod: 7 })],
    ['a path that is a number', (r) => ({ ...r, path: 7 })],
    ['a deposit error that is not a string', (r) => ({ ...r, depositError: {} })],
    ['a history that is a string', (r) => ({ ...r, history: '' })],
    ['an event of a pod that is a number', (r) => ({ ...r, history: [event({ pod: 5 })] })],
    ['protection that is a Date', (r) => ({ ...r, protection: new Date(0) })],
  ];

  it.each(keyBreaks)(
    'a key record with %s',
    refusedByBoth(keyRecord, keyRecordCodec.encode, keyRecordCodec.decode, /invalid key record/),
  );

  const podBreaks: ReadonlyArray<readonly [string, (p: PodRecord) => Loose]> = [
    ['a key that is no pubkey', (p) => ({ ...p, keys: [...p.keys, '0xabc'] })],
    ['a cooling key that is no pubkey', (p) => ({ ...p, cooling: ['nope'] })],
    ['a NaN since', (p) => ({ ...p, since: Number.NaN })],
    [
      'too many past UIDs',
      (p) => ({ ...p, pastUids: Array.from({ length: 9 }, (_, i) => `u${i}`) }),
    ],
    ['an unknown field', (p) => ({ ...p, holder: 'x' })],
    ['keys that are a string', (p) => ({ ...p, keys: '' })],
    ['reported keys that are null', (p) => ({ ...p, reported: null })],
    ['past UIDs that are a string', (p) => ({ ...p, pastUids: 'x' })],
    ['a UID that is a number', (p) => ({ ...p, uid: 5 })],
  ];

  it.each(podBreaks)(
    'a pod record with %s',
    refusedByBoth(podRecord, podRecordCodec.encode, podRecordCodec.decode, /invalid pod record/),
  );

  const eventBreaks: ReadonlyArray<readonly [string, (e: AuditEvent) => Loose]> = [
    ['a negative sequence number', (e) => ({ ...e, seq: -1 })],
    ['a NaN time', (e) => ({ ...e, at: Number.NaN })],
    ['an unknown type', (e) => ({ ...e, type: 'bogus' })],
    ['an unknown field', (e) => ({ ...e, by: 'x' })],
    ['pubkeys that are a string', (e) => ({ ...e, pubkeys: 'abc' })],
    ['a pod that is a number', (e) => ({ ...e, pod: 5 })],
    ['a detail that is not a string', (e) => ({ ...e, detail: ['x'] })],
  ];

  it.each(eventBreaks)(
    'an audit event with %s',
    refusedByBoth(auditEvent, encodeEvent, decodeEvent, /invalid audit event/),
  );
});

describe("a read's shortcut past the whole schema (write-check.ts's readShortcut)", () => {
  type Json = unknown;
  /** Every place in a JSON value: the path to each field and item, at any depth. */
  function places(
    value: Json,
    at: ReadonlyArray<string | number> = [],
  ): Array<Array<string | number>> {
    if (typeof value !== 'object' || value === null) return [];
    const children: Array<[string | number, Json]> = Array.isArray(value)
      ? value.map((v, i): [number, Json] => [i, v])
      : Object.entries(value);
    return children.flatMap(([k, v]) => [[...at, k], ...places(v, [...at, k])]);
  }
  /** `value` with the place at `path` set to `to` (removed when `to` is undefined). */
  function changed(value: Json, path: ReadonlyArray<string | number>, to: Json): Json {
    const [head, ...rest] = path;
    if (head === undefined) return to;
    if (Array.isArray(value)) {
      const copy = [...value];
      if (rest.length === 0 && to === undefined) copy.splice(Number(head), 1);
      else copy[Number(head)] = changed(copy[Number(head)], rest, to);
      return copy;
    }
    const copy: Record<string, Json> = { ...(value as Record<string, Json>) };
    if (rest.length === 0 && to === undefined) delete copy[head];
    else copy[head] = changed(copy[head], rest, to);
    return copy;
  }
  /** A valid value broken at one place, at random: a field or item replaced, removed or added. */
  const brokenFrom = <T>(valid: fc.Arbitrary<T>) =>
    fc
      .tuple(
        valid,
        fc.nat(),
        fc.oneof(fc.jsonValue(), fc.constant(undefined)),
        fc.constantFrom('', 'extra'),
      )
      .map(([v, pick, to, extra]) => {
        const json: Json = JSON.parse(JSON.stringify(v));
        const all = places(json);
        const path = all[pick % all.length] ?? [];
        // An extra name beside the place: a new field (or item) rather than a changed one.
        const at = extra === '' ? path : [...path.slice(0, -1), extra];
        return changed(json, at, to);
      });

  const codecs = [
    ['key records', keyRecordCodec, keyRecord],
    ['pod records', podRecordCodec, podRecord],
  ] as const;

  it.each(codecs)('%s: every valid one is read past the schema, unchanged', (_, codec, valid) =>
    fc.assert(
      fc.property(valid, (v: unknown) => {
        const text = JSON.stringify(v);
        expect(codec.readsPastSchema(JSON.parse(text))).toBe(true);
        expect(codec.decode(text)).toEqual(JSON.parse(text));
      }),
      RUNS,
    ),
  );

  it.each(codecs)(
    '%s: what it lets past, the schema accepts as it is; what it does not, the read refuses',
    (_, codec, valid) => {
      let past = 0;
      let refused = 0;
      fc.assert(
        fc.property(brokenFrom<unknown>(valid), (broken) => {
          const text = JSON.stringify(broken);
          if (codec.readsPastSchema(JSON.parse(text))) {
            past++;
            // canonical() is the whole schema's output (it throws INTERNAL on what it refuses).
            expect(JSON.parse(codec.canonical(broken as never))).toEqual(JSON.parse(text));
          } else {
            // What the shortcut leaves is either refused by the schema, or valid after all.
            try {
              codec.canonical(broken as never);
            } catch (err) {
              refused++;
              expect(() => codec.decode(text)).toThrow(
                expect.objectContaining({ code: 'STORE_CORRUPT' }),
              );
              expect(err).toMatchObject({ code: 'INTERNAL' });
            }
          }
        }),
        { numRuns: 3000 },
      );
      // Both sides were reached: the breaks are neither all harmless nor all fatal.
      expect(past).toBeGreaterThan(100);
      expect(refused).toBeGreaterThan(100);
    },
  );
});

describe('the canonical spelling (PostgreSQL compares before-images in it)', () => {
  it('is the same for the same record in any field order, and refuses an invalid one', () => {
    fc.assert(
      fc.property(keyRecord, (r) => {
        const reversed = Object.fromEntries(Object.entries(r).reverse()) as KeyRecord;
        expect(keyRecordCodec.canonical(reversed)).toBe(keyRecordCodec.canonical(r));
        expect(() => keyRecordCodec.canonical({ ...r, since: -1 })).toThrow(
          expect.objectContaining({ code: 'INTERNAL' }),
        );
      }),
      { numRuns: 50 },
    );
  });
});
