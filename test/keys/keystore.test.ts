import { describe, expect, it } from 'vitest';
import { publicKeyOf, randomKey, toHex } from '../../src/keys/bls.js';
import {
  decryptKeystore,
  encryptKeystore,
  newKdf,
  parseKeystore,
  passwordBytes,
} from '../../src/keys/keystore.js';
import { keystoreCases } from './vectors.js';

/** Cheap costs for unit tests; the official vectors and e2e tests use EIP-2335's. */
const CHEAP = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1000 } } as const;

describe('EIP-2335 official vectors', () => {
  it.each(keystoreCases())(
    '$name decrypts to its secret, and the secret gives its pubkey',
    async (v) => {
      const secret = await decryptKeystore(v.keystore, v.password);
      expect(toHex(secret)).toBe(v.secret);
      expect(publicKeyOf(secret)).toBe(`0x${v.pubkey}`);
    },
  );

  it('a wrong password is KEYSTORE_PASSWORD, not garbage', async () => {
    const [v] = keystoreCases().filter((c) => c.name.startsWith('pbkdf2'));
    if (!v) throw new Error('no pbkdf2 vector');
    await expect(decryptKeystore(v.keystore, `${v.password}x`)).rejects.toMatchObject({
      code: 'KEYSTORE_PASSWORD',
    });
  });
});

describe('keystores we write', () => {
  it.each(['scrypt', 'pbkdf2'] as const)(
    '%s: carry pubkey, path, uuid, version 4 and decrypt back',
    async (kdf) => {
      const key = randomKey();
      const ks = await encryptKeystore(
        key.secretKey,
        'correct horse',
        { pubkey: key.pubkey, path: '' },
        kdf,
        CHEAP,
      );
      expect(ks).toMatchObject({ pubkey: key.pubkey.slice(2), path: '', version: 4 });
      expect(ks.uuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(ks.crypto.kdf.function).toBe(kdf);
      expect(await decryptKeystore(JSON.parse(JSON.stringify(ks)), 'correct horse')).toEqual(
        key.secretKey,
      );
      await expect(decryptKeystore(ks, 'wrong horse')).rejects.toMatchObject({
        code: 'KEYSTORE_PASSWORD',
      });
    },
  );

  it('uses a fresh salt and IV for every keystore', async () => {
    const key = randomKey();
    const a = await encryptKeystore(
      key.secretKey,
      'pw',
      { pubkey: key.pubkey, path: '' },
      'scrypt',
      CHEAP,
    );
    const b = await encryptKeystore(
      key.secretKey,
      'pw',
      { pubkey: key.pubkey, path: '' },
      'scrypt',
      CHEAP,
    );
    expect(a.crypto.kdf.params.salt).not.toBe(b.crypto.kdf.params.salt);
    expect(a.crypto.cipher.params.iv).not.toBe(b.crypto.cipher.params.iv);
  });

  it('refuses something that is not a keystore with KEYSTORE_INVALID', async () => {
    await expect(decryptKeystore({ version: 3 }, 'pw')).rejects.toMatchObject({
      code: 'KEYSTORE_INVALID',
    });
  });
});

describe('EIP-2335 password processing', () => {
  it('NFKD-normalises and strips C0, DEL and C1 control codes', () => {
    expect(passwordBytes('a\u0000b\u001fc\u007fd\u0080e\u009ff')).toEqual(Buffer.from('abcdef'));
    expect(passwordBytes('\u2163')).toEqual(Buffer.from('IV')); // ROMAN NUMERAL FOUR -> "IV" under NFKD
    expect(passwordBytes('pässword')).toEqual(Buffer.from('pa\u0308ssword'));
  });
});

describe('KDF costs pkm opens', () => {
  const withKdf = async (kdf: ReturnType<typeof newKdf>) => {
    const k = randomKey();
    const ks = await encryptKeystore(k.secretKey, 'pw', { pubkey: k.pubkey, path: '' }, 'pbkdf2', {
      scrypt: { n: 2, r: 1, p: 1 },
      pbkdf2: { c: 1 },
    });
    return { ...ks, crypto: { ...ks.crypto, kdf } };
  };
  const scrypt = (n: number, r: number, p: number) =>
    newKdf('scrypt', { scrypt: { n, r, p }, pbkdf2: { c: 1 } });
  const pbkdf2 = (c: number) => newKdf('pbkdf2', { scrypt: { n: 2, r: 1, p: 1 }, pbkdf2: { c } });

  it("opens EIP-2335's recommended costs and well above them", async () => {
    for (const kdf of [
      scrypt(2 ** 18, 8, 1),
      scrypt(2 ** 20, 8, 1),
      pbkdf2(2 ** 18),
      pbkdf2(2 ** 24),
    ]) {
      const ks = await withKdf(kdf);
      expect(() => parseKeystore(ks)).not.toThrow();
    }
  });

  it('refuses a cost that would take gigabytes or hours, as KEYSTORE_INVALID', async () => {
    for (const kdf of [
      scrypt(2 ** 21, 8, 1),
      scrypt(2 ** 18, 8, 32),
      scrypt(2 ** 18, 64, 1),
      pbkdf2(2 ** 31 - 1),
    ]) {
      const ks = await withKdf(kdf);
      expect(() => parseKeystore(ks)).toThrow(
        expect.objectContaining({
          code: 'KEYSTORE_INVALID',
          message: expect.stringContaining('KDF cost'),
        }),
      );
    }
  });
});
