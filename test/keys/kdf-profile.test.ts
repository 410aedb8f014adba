// The KDF profiles (src/keys/kdf-profile.ts): standard stays EIP-2335's costs; fast keystores
// follow the read rules found in each validator client's source (written down there), and
// decrypt with @chainsafe/bls-keystore (Lodestar's reader) and with pkm's own code.
import { Keystore as ChainsafeKeystore } from '@chainsafe/bls-keystore';
import { describe, expect, it } from 'vitest';
import { publicKeyOf, randomKey } from '../../src/keys/bls.js';
import { KdfPool } from '../../src/keys/kdf-pool.js';
import {
  FAST_KDF_COSTS,
  KDF_PROFILES,
  PROFILE_KDF,
  profileCosts,
} from '../../src/keys/kdf-profile.js';
import {
  decryptKeystore,
  encryptKeystore,
  type KdfCosts,
  type Keystore,
  parseKeystore,
} from '../../src/keys/keystore.js';
import { openKeystore } from '../../src/keys/keystore-open.js';

const PASSWORD = 'a password beside the keystore';

async function written(profile: 'standard' | 'fast', costs: KdfCosts = profileCosts(profile)) {
  const key = randomKey();
  const ks = await encryptKeystore(
    key.secretKey,
    PASSWORD,
    { pubkey: key.pubkey, path: 'm/12381/3600/0/0/0' },
    PROFILE_KDF[profile],
    costs,
  );
  // As the client writes it to disk and a validator client reads it back.
  return { key, ks: parseKeystore(JSON.parse(JSON.stringify(ks))), json: JSON.stringify(ks) };
}

const isPowerOf2 = (n: number) => n > 1 && (n & (n - 1)) === 0;
const hexBytes = (hex: string) => hex.length / 2;

/**
 * What each validator client checks when it reads a keystore's KDF and cipher, as found in its
 * source (src/keys/kdf-profile.ts names the files). Each returns the rules a keystore breaks.
 */
const CLIENT_RULES: Record<string, (ks: Keystore, json: string) => string[]> = {
  nimbus: (ks, json) => {
    const broken: string[] = [];
    const kdf = ks.crypto.kdf;
    if (kdf.function === 'scrypt') {
      const { n, r, p, dklen } = kdf.params;
      if (n !== 2 ** 18 || r !== 8 || p !== 1 || dklen !== 32) broken.push('scrypt not 2^18/8/1');
    } else {
      if (kdf.params.c < 1) broken.push('c == 0');
      if (kdf.params.dklen < 32) broken.push('dklen < 32');
      const salt = kdf.params.salt;
      if (salt.length === 0 || salt.length % 16 !== 0) broken.push('salt hex length % 16');
    }
    if (hexBytes(ks.crypto.cipher.params.iv) !== 16) broken.push('iv not 16 bytes');
    // Its reader wants "function" first in each module.
    const parsed = JSON.parse(json) as { crypto: Record<string, Record<string, unknown>> };
    for (const mod of ['kdf', 'checksum', 'cipher']) {
      if (Object.keys(parsed.crypto[mod] ?? {})[0] !== 'function') broken.push(`${mod} order`);
    }
    return broken;
  },
  lighthouse: (ks) => {
    const kdf = ks.crypto.kdf;
    if (kdf.function === 'scrypt') {
      const { n, r, p, dklen } = kdf.params;
      return !isPowerOf2(n) || r < 1 || p < 1 || dklen !== 32 || kdf.params.salt === ''
        ? ['scrypt params']
        : [];
    }
    const { c, dklen, salt } = kdf.params;
    return c < 1 || c > 80_000_000 || dklen !== 32 || salt === '' ? ['pbkdf2 params'] : [];
  },
  'teku and web3signer': (ks) => {
    const kdf = ks.crypto.kdf;
    const broken: string[] = [];
    if (kdf.params.dklen < 32) broken.push('dklen < 32');
    if (kdf.function === 'scrypt') {
      const { n, r, p } = kdf.params;
      if (!isPowerOf2(n) || (r === 1 && n >= 65536) || r < 1 || p < 1) broken.push('scrypt');
    } else if (kdf.params.c < 1) broken.push('c < 1');
    const iv = hexBytes(ks.crypto.cipher.params.iv);
    if (iv < 8 || iv > 16) broken.push('iv size');
    if (ks.pubkey === undefined) broken.push('pubkey missing');
    return broken;
  },
  lodestar: (ks) => {
    const kdf = ks.crypto.kdf;
    if (kdf.function === 'scrypt') return hexBytes(kdf.params.salt) === 32 ? [] : ['salt'];
    return kdf.params.c >= 1 ? [] : ['node pbkdf2 needs c >= 1'];
  },
  prysm: (ks) => (ks.crypto.kdf.params.dklen >= 32 ? [] : ['derived key < 32 bytes']),
};

describe('KDF profiles', () => {
  it("standard is EIP-2335's costs and scrypt, as before the profiles", () => {
    expect(KDF_PROFILES).toEqual(['standard', 'fast']);
    expect(PROFILE_KDF.standard).toBe('scrypt');
    expect(profileCosts('standard')).toEqual({
      scrypt: { n: 262_144, r: 8, p: 1 },
      pbkdf2: { c: 262_144 },
    });
  });

  it('fast is pbkdf2 at c=1, and its scrypt stays at the only cost Nimbus opens', () => {
    expect(PROFILE_KDF.fast).toBe('pbkdf2');
    expect(FAST_KDF_COSTS).toEqual({ scrypt: { n: 262_144, r: 8, p: 1 }, pbkdf2: { c: 1 } });
  });

  it("fast keystores break none of the clients' read rules; a cheap scrypt would break Nimbus's", async () => {
    const fast = await written('fast');
    expect(fast.ks.crypto.kdf).toMatchObject({
      function: 'pbkdf2',
      params: {
        c: 1,
        dklen: 32,
        prf: 'hmac-sha256',
        salt: expect.stringMatching(/^[0-9a-f]{64}$/),
      },
    });
    for (const [client, rules] of Object.entries(CLIENT_RULES)) {
      expect([client, rules(fast.ks, fast.json)]).toEqual([client, []]);
    }
    const cheapScrypt = await written('standard', {
      scrypt: { n: 1024, r: 8, p: 1 },
      pbkdf2: { c: 1 },
    });
    expect(CLIENT_RULES.nimbus?.(cheapScrypt.ks, cheapScrypt.json)).toEqual([
      'scrypt not 2^18/8/1',
    ]);
  });

  it('fast keystores decrypt with @chainsafe/bls-keystore and with pkm (in process and on the KDF pool)', async () => {
    const pool = new KdfPool(2);
    try {
      for (let i = 0; i < 3; i++) {
        const { key, ks, json } = await written('fast');
        const chainsafe = ChainsafeKeystore.parse(json);
        expect(await chainsafe.verifyPassword(PASSWORD)).toBe(true);
        expect(await chainsafe.verifyPassword(`${PASSWORD}!`)).toBe(false);
        expect(await chainsafe.decrypt(PASSWORD)).toEqual(key.secretKey);
        expect(await decryptKeystore(JSON.parse(json), PASSWORD)).toEqual(key.secretKey);
        await expect(decryptKeystore(JSON.parse(json), 'another')).rejects.toMatchObject({
          code: 'KEYSTORE_PASSWORD',
        });
        const opened = await openKeystore(pool, ks, PASSWORD);
        expect(opened.pubkey).toBe(key.pubkey);
        expect(publicKeyOf(opened.secret)).toBe(key.pubkey);
      }
    } finally {
      await pool.close();
    }
  });
});
