// @ts-check
// AES-256-GCM as the store seals secrets and its data key: IV, ciphertext, tag. Plain
// JavaScript because a worker thread runs it too (secret-worker.mjs), and a worker cannot load
// TypeScript under the test runner (Node 20 does not pass module hooks such as tsx's to worker
// threads). `// @ts-check` keeps it type-checked all the same.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/**
 * @param {Buffer} key
 * @param {Buffer} plain
 * @param {Buffer} aad
 * @returns {Buffer}
 */
export function sealGcm(key, plain, aad) {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  return Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/**
 * undefined when the key or the additional data is not the one it was sealed with.
 * @param {Uint8Array} key
 * @param {Buffer} sealed
 * @param {Buffer} aad
 * @returns {Buffer | undefined}
 */
export function openGcm(key, sealed, aad) {
  if (sealed.length < IV_BYTES + TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const head = decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES));
  let tail;
  try {
    tail = decipher.final();
  } catch {
    head.fill(0);
    return undefined; // GCM's tag did not verify: wrong key, or tampered
  }
  // A buffer of its own (Buffer.alloc never uses the shared pool that Buffer.concat may), and
  // the pieces wiped: the plaintext is a secret or a data key.
  const plain = Buffer.alloc(head.length + tail.length);
  head.copy(plain);
  tail.copy(plain, head.length);
  head.fill(0);
  tail.fill(0);
  return plain;
}
