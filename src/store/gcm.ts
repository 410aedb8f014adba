// AES-256-GCM as the store seals secrets and its data key: IV, ciphertext, tag (NIST SP
// 800-38D: a 96-bit IV, a 128-bit tag).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

export function sealGcm(key: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  return Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/** undefined when the key or the additional data is not the one it was sealed with. */
export function openGcm(key: Uint8Array, sealed: Buffer, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < IV_BYTES + TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const head = decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES));
  let tail: Buffer;
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
