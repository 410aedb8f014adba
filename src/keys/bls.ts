// BLS12-381 keys as Ethereum uses them: a secret scalar in [1, r-1] and a 48-byte compressed G1
// public key ("minimal-pubkey-size" variant, consensus-specs phase0 BLS).
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { PkmError } from '../errors.js';
import { bls } from './bls-backend.js';
/** The order r of the BLS12-381 subgroups. */
export const CURVE_ORDER = bls12_381.fields.Fr.ORDER;

export interface BlsKey {
  readonly secretKey: Uint8Array;
  /** 0x-prefixed lowercase hex of the 48-byte compressed public key. */
  readonly pubkey: string;
}

/** A key as a key source makes it: random, or derived (then with its EIP-2334 paths). */
export interface NewKey extends BlsKey {
  /** EIP-2334 path, for derived keys. */
  readonly path?: string;
  /** The EIP-2334 withdrawal key's pubkey (derived keys only). */
  readonly withdrawalPubkey?: Uint8Array;
}

export function toHex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}

/** The secret as a big-endian integer; refuses 0 and anything at or above r. */
export function checkSecretKey(secretKey: Uint8Array): void {
  const n = secretKey.length === 32 ? BigInt(toHex(secretKey)) : 0n;
  if (n <= 0n || n >= CURVE_ORDER) {
    throw new PkmError('INTERNAL', 'a BLS secret key must be 32 bytes in [1, r-1]');
  }
}

export function publicKeyOf(secretKey: Uint8Array): string {
  checkSecretKey(secretKey);
  return toHex(bls.publicKey(secretKey));
}

/** A fresh key from the OS CSPRNG (noble reduces 48 random bytes mod r, so it is in [1, r-1]). */
export function randomKey(): BlsKey {
  const secretKey = bls12_381.utils.randomSecretKey();
  return { secretKey, pubkey: publicKeyOf(secretKey) };
}
