// Encrypts a batch of keys as EIP-2335 keystores, a bounded number at a time: scrypt at
// EIP-2335's costs takes 256 MiB each, so peak memory is about concurrency x 256 MiB.
import pLimit from 'p-limit';
import {
  deriveKey,
  KDF_COSTS,
  type KdfCosts,
  type KdfName,
  type Keystore,
  newKdf,
  sealWithKey,
} from '../keys/keystore.js';

export interface PlainKey {
  readonly pubkey: string;
  readonly secretKey: Uint8Array;
  readonly path: string;
}

export interface EncryptOptions {
  readonly kdf: KdfName;
  readonly concurrency: number;
  /**
   * One KDF run for the whole batch: one salt and one derived key, with a fresh IV and its own
   * checksum per keystore (as ethstaker-deposit-cli does for a batch). Each file is still a
   * valid EIP-2335 keystore; the shared salt shows that they share a password.
   */
  readonly sharedKdf: boolean;
  readonly costs?: KdfCosts;
}

export async function encryptAll(
  keys: readonly PlainKey[],
  password: string,
  opts: EncryptOptions,
): Promise<Keystore[]> {
  const costs = opts.costs ?? KDF_COSTS;
  const meta = (k: PlainKey) => ({ pubkey: k.pubkey, path: k.path });
  if (opts.sharedKdf) {
    const kdf = newKdf(opts.kdf, costs);
    const dk = await deriveKey(kdf, password);
    return keys.map((k) => sealWithKey(k.secretKey, kdf, dk, meta(k)));
  }
  const limit = pLimit(Math.max(1, opts.concurrency));
  return Promise.all(
    keys.map((k) =>
      limit(async () => {
        const kdf = newKdf(opts.kdf, costs);
        return sealWithKey(k.secretKey, kdf, await deriveKey(kdf, password), meta(k));
      }),
    ),
  );
}
