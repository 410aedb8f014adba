import { describe, expect, it } from 'vitest';
import { MetaKey } from '../../src/store/buckets.js';
import {
  gcmCodec,
  KeyRing,
  kekId,
  parseKek,
  unwrapDataKey,
  wrapDataKey,
} from '../../src/store/encryption.js';
import type { KeyRecord, SealedSecret } from '../../src/store/records.js';
import { resealPlaintext } from '../../src/store/reseal.js';
import { eachBackend } from '../support/backends.js';

const A = `0x${'aa'.repeat(48)}`;
const B = `0x${'bb'.repeat(48)}`;
const C = `0x${'cc'.repeat(48)}`;

/** The real ring, keeping every plaintext it opens. */
class KeepingRing extends KeyRing {
  readonly plaintexts: Uint8Array[] = [];
  override open(sealed: SealedSecret, pubkey: string): Uint8Array {
    const plain = super.open(sealed, pubkey);
    this.plaintexts.push(plain);
    return plain;
  }
}

describe('secret sealing', () => {
  it('binds a sealed secret to its pubkey and names the KEK', () => {
    const codec = gcmCodec(Buffer.alloc(32, 3), 'kek-1');
    const sealed = codec.seal(new Uint8Array(32).fill(9), A);
    expect(sealed).toMatchObject({ alg: 'aes-256-gcm', kek: 'kek-1' });
    expect(codec.open(sealed, A)).toEqual(new Uint8Array(32).fill(9));
    expect(() => codec.open(sealed, B)).toThrow(/does not open/); // moved to another record
    expect(() => gcmCodec(Buffer.alloc(32, 4), 'kek-1').open(sealed, A)).toThrow(/does not open/);
  });

  it('opens each secret and data key into a buffer of its own, not a view of a shared pool', () => {
    const codec = gcmCodec(Buffer.alloc(32, 3), 'kek-1');
    expect(codec.open(codec.seal(new Uint8Array(32).fill(9), A), A).buffer.byteLength).toBe(32);
    const kek = Buffer.alloc(32, 6);
    expect(unwrapDataKey(wrapDataKey(Buffer.alloc(32, 5), kek), kek).buffer.byteLength).toBe(32);
  });

  it.each([
    ['not hex', 'zz'.repeat(32)],
    ['hex then something else', `${'09'.repeat(16)}not hex`],
    ['too short', '09'.repeat(16)],
    ['empty', ''],
  ])('refuses a secret an earlier build kept as hex that is %s: STORE_CORRUPT', async (_, data) => {
    const codec = gcmCodec(Buffer.alloc(32, 3), 'kek-1');
    const sealed = { alg: 'hex', data };
    const refusal = { code: 'STORE_CORRUPT', message: expect.stringMatching(/64 hex digits/) };
    expect(() => codec.open(sealed, A)).toThrow(expect.objectContaining(refusal));
    expect(() => codec.openMany([{ sealed, pubkey: A }])).toThrow(expect.objectContaining(refusal));
  });

  it('opens many in order; when one does not open, refuses them all and zeroes the others', () => {
    const ring = new KeepingRing('kek-1', Buffer.alloc(32, 3));
    const [a, b, c] = [A, B, C].map((pk, i) => ({
      sealed: ring.seal(new Uint8Array(32).fill(i + 1), pk),
      pubkey: pk,
    }));
    if (!a || !b || !c) throw new Error('three sealed secrets');
    const opened = ring.openMany([c, a]);
    expect(opened).toEqual([new Uint8Array(32).fill(3), new Uint8Array(32).fill(1)]);
    // B's sealed secret under A's record: it does not open there.
    const moved = { sealed: b.sealed, pubkey: A };
    ring.plaintexts.length = 0;
    expect(() => ring.openMany([a, moved, c])).toThrow(
      expect.objectContaining({ code: 'STORE_CORRUPT', message: expect.stringContaining(A) }),
    );
    // a opened, then was zeroed; c was never opened.
    expect(ring.plaintexts).toHaveLength(1);
    for (const plain of ring.plaintexts) expect(plain.every((byte) => byte === 0)).toBe(true);
  });

  it('wraps the data key so that only its KEK unwraps it', () => {
    const kek = parseKek('22'.repeat(32), 'test');
    const wrapped = wrapDataKey(Buffer.alloc(32, 5), kek);
    expect(wrapped.kek).toBe(kekId(kek));
    expect(unwrapDataKey(wrapped, kek)).toEqual(Buffer.alloc(32, 5));
    expect(() => unwrapDataKey(wrapped, Buffer.alloc(32, 6))).toThrow(
      expect.objectContaining({ code: 'WRONG_KEK' }),
    );
    expect(() => parseKek('too short', 'test')).toThrow(/32 random bytes/);
    expect(parseKek(Buffer.alloc(32, 1).toString('base64'), 'test')).toEqual(Buffer.alloc(32, 1));
  });
});

// A store an earlier LevelDB build wrote, copied as it is (pkm db copy), may reach either backend.
eachBackend((backend) => {
  describe('secret sealing', () => {
    it('re-seals secrets an earlier build kept as hex', async () => {
      const store = await backend.open();
      const secret = Buffer.alloc(32, 8);
      const legacy: KeyRecord = {
        pubkey: A,
        secret: { alg: 'hex', data: secret.toString('hex') },
        state: 'free',
        since: 1,
        createdAt: 1,
        history: [{ at: 1, event: 'created' }],
      };
      await store.commit({ keys: [{ after: legacy }], pods: [] });
      expect(await resealPlaintext(store)).toBe(1);
      const record = await store.getKey(A);
      expect(record?.secret?.alg).toBe('aes-256-gcm');
      expect(store.secrets.open(record?.secret ?? { alg: 'missing', data: '' }, A)).toEqual(
        Uint8Array.from(secret),
      );
      expect(await resealPlaintext(store)).toBe(0);
      // The scan that found none left noted it: later starts skip it.
      expect(await store.getMeta(MetaKey.secretsSealed)).toBe('1');
    });

    it('scans a store once: a start that found every secret sealed notes it, and later starts read no record', async () => {
      const store = await backend.open();
      // Empty: nothing to scan, nothing noted (a new store's first start writes nothing).
      expect(await resealPlaintext(store)).toBe(0);
      expect(await store.getMeta(MetaKey.secretsSealed)).toBeUndefined();
      const sealed: KeyRecord = {
        pubkey: A,
        secret: store.secrets.seal(Buffer.alloc(32, 7), A),
        state: 'free',
        since: 1,
        createdAt: 1,
        history: [{ at: 1, event: 'created' }],
      };
      await store.commit({ keys: [{ after: sealed }], pods: [] });
      expect(await resealPlaintext(store)).toBe(0);
      expect(await store.getMeta(MetaKey.secretsSealed)).toBe('1');
      // No build writes plaintext into such a store (they predate schema 4 and refuse it); were
      // one there, the scan would no longer look for it: the mark is what skips the scan.
      const legacy: KeyRecord = {
        ...sealed,
        pubkey: B,
        secret: { alg: 'hex', data: '09'.repeat(32) },
      };
      await store.commit({ keys: [{ after: legacy }], pods: [] });
      expect(await resealPlaintext(store)).toBe(0);
      expect((await store.getKey(B))?.secret?.alg).toBe('hex');
    });
  });
});
