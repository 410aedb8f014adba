// How secret keys are sealed in the store. Every read and write of a secret goes through a
// SecretCodec, so encryption at rest replaces this one module.
import { PkmError } from '../errors.js';
import type { SealedSecret } from './records.js';

export interface SecretCodec {
  seal(secret: Uint8Array): SealedSecret;
  open(sealed: SealedSecret): Uint8Array;
}

/**
 * Stores the secret as hex. It keeps the record format that encryption at rest will extend
 * (`alg` tells which codec sealed a record); it is not encryption.
 */
export const hexSecretCodec: SecretCodec = {
  seal(secret) {
    return { alg: 'hex', data: Buffer.from(secret).toString('hex') };
  },
  open(sealed) {
    if (sealed.alg !== 'hex' || !/^[0-9a-f]{64}$/.test(sealed.data)) {
      throw new PkmError('STORE_CORRUPT', `cannot open a secret sealed with "${sealed.alg}"`);
    }
    return Uint8Array.from(Buffer.from(sealed.data, 'hex'));
  },
};
