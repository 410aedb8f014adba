import { bls12_381 } from '@noble/curves/bls12-381.js';
import { describe, expect, it } from 'vitest';
import { CURVE_ORDER, checkSecretKey, publicKeyOf, randomKey } from '../../src/keys/bls.js';

const be32 = (n: bigint) => Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));

describe('BLS keys', () => {
  it('gives the compressed G1 generator as the public key of secret 1', () => {
    // The BLS12-381 G1 generator in compressed form (consensus-specs / ZCash serialisation).
    expect(publicKeyOf(be32(1n))).toBe(
      '0x97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb',
    );
  });

  it('makes random keys with a secret in [1, r-1] and a 48-byte pubkey on the curve', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const k = randomKey();
      const n = BigInt(`0x${Buffer.from(k.secretKey).toString('hex')}`);
      expect(n > 0n && n < CURVE_ORDER).toBe(true);
      expect(k.pubkey).toMatch(/^0x[0-9a-f]{96}$/);
      expect(() => bls12_381.G1.Point.fromHex(k.pubkey.slice(2)).assertValidity()).not.toThrow();
      seen.add(k.pubkey);
    }
    expect(seen.size).toBe(20);
  });

  it('refuses 0, r and 31-byte secrets', () => {
    expect(() => checkSecretKey(be32(0n))).toThrow(/\[1, r-1\]/);
    expect(() => checkSecretKey(be32(CURVE_ORDER))).toThrow(/\[1, r-1\]/);
    expect(() => checkSecretKey(new Uint8Array(31).fill(1))).toThrow(/\[1, r-1\]/);
    expect(() => checkSecretKey(be32(CURVE_ORDER - 1n))).not.toThrow();
  });
});
