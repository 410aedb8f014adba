// EIP-2333: BLS12-381 key derivation from a seed, by the spec's functions
// (https://eips.ethereum.org/EIPS/eip-2333), with node:crypto's HKDF and SHA-256.
import { createHash, hkdfSync } from 'node:crypto';
import { PkmError } from '../errors.js';
import { CURVE_ORDER } from './bls.js';

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/** I2OSP: a non-negative integer as `length` big-endian bytes. */
function i2osp(value: bigint, length: number): Buffer {
  return Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');
}

/** EIP-2333 HKDF_mod_r (the BLS signature draft's KeyGen, with the salt re-hashed until SK != 0). */
function hkdfModR(ikm: Uint8Array, keyInfo: Uint8Array = new Uint8Array()): bigint {
  const L = 48; // ceil((3 * ceil(log2(r))) / 16)
  let salt: Buffer = Buffer.from('BLS-SIG-KEYGEN-SALT-', 'ascii');
  for (;;) {
    salt = sha256(salt);
    const okm = hkdfSync(
      'sha256',
      Buffer.concat([ikm, i2osp(0n, 1)]),
      salt,
      Buffer.concat([keyInfo, i2osp(BigInt(L), 2)]),
      L,
    );
    const sk = BigInt(`0x${Buffer.from(okm).toString('hex')}`) % CURVE_ORDER;
    if (sk !== 0n) return sk;
  }
}

/** EIP-2333 IKM_to_lamport_SK: 255 chunks of 32 bytes from one HKDF (extract, then expand). */
function ikmToLamportSk(ikm: Uint8Array, salt: Uint8Array): Buffer[] {
  const okm = Buffer.from(hkdfSync('sha256', ikm, salt, new Uint8Array(), 255 * 32));
  return Array.from({ length: 255 }, (_, i) => okm.subarray(i * 32, (i + 1) * 32));
}

/** EIP-2333 parent_SK_to_lamport_PK: the compressed Lamport public key of a child index. */
function parentSkToLamportPk(parentSk: bigint, index: number): Buffer {
  const salt = i2osp(BigInt(index), 4);
  const ikm = i2osp(parentSk, 32);
  const notIkm = Buffer.from(ikm.map((b) => ~b & 0xff));
  const lamport = [...ikmToLamportSk(ikm, salt), ...ikmToLamportSk(notIkm, salt)];
  return sha256(Buffer.concat(lamport.map(sha256)));
}

export function deriveMasterSk(seed: Uint8Array): bigint {
  if (seed.length < 32)
    throw new PkmError('INVALID_CONFIG', 'an EIP-2333 seed must be at least 32 bytes');
  return hkdfModR(seed);
}

export function deriveChildSk(parentSk: bigint, index: number): bigint {
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** 32) {
    throw new PkmError('INTERNAL', `EIP-2333 child index ${index} is not a uint32`);
  }
  return hkdfModR(parentSkToLamportPk(parentSk, index));
}

/** "m/12381/3600/0/0/0" -> [12381, 3600, 0, 0, 0] (EIP-2334 path syntax: no hardened marks). */
export function parsePath(path: string): number[] {
  const parts = path.split('/');
  if (parts[0] !== 'm' || parts.length < 2)
    throw new PkmError('INTERNAL', `"${path}" is not a key path`);
  return parts.slice(1).map((p) => {
    const n = /^\d+$/.test(p) ? Number(p) : Number.NaN;
    if (!Number.isSafeInteger(n) || n >= 2 ** 32)
      throw new PkmError('INTERNAL', `"${path}" is not a key path`);
    return n;
  });
}

export function deriveSkAtPath(seed: Uint8Array, path: string): bigint {
  return parsePath(path).reduce((sk, index) => deriveChildSk(sk, index), deriveMasterSk(seed));
}

/** A secret scalar as the 32 big-endian bytes keys use. */
export function secretKeyBytes(sk: bigint): Uint8Array {
  return Uint8Array.from(i2osp(sk, 32));
}
