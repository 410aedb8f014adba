// Opens an EIP-2335 keystore for an import: parsed here, its KDF run on the pool (kdf-pool.ts),
// checked and decrypted here (keystore.ts), and the secret checked against the pubkey the
// keystore names. Every way it can fail is a coded error; none names the secret.
import { PkmError } from '../errors.js';
import { checkSecretKey, publicKeyOf } from './bls.js';
import type { KdfPool } from './kdf-pool.js';
import { decryptWithKey, type Keystore, passwordBytes } from './keystore.js';

export interface OpenedKey {
  /** 0x-prefixed lowercase hex of the compressed public key, as derived from the secret. */
  readonly pubkey: string;
  /** The caller zeroes it once it is sealed. */
  readonly secret: Uint8Array;
}

/** The keystore's secret and the pubkey it makes; refuses a secret outside [1, r-1]. */
export async function openKeystore(
  pool: KdfPool,
  keystore: Keystore,
  password: string,
): Promise<OpenedKey> {
  const pw = passwordBytes(password);
  let dk: Uint8Array;
  try {
    dk = await pool.derive(keystore.crypto.kdf, pw);
  } finally {
    pw.fill(0);
  }
  const secret = decryptWithKey(keystore, dk);
  let pubkey: string;
  try {
    checkSecretKey(secret);
    pubkey = publicKeyOf(secret);
  } catch {
    secret.fill(0);
    throw new PkmError(
      'KEYSTORE_INVALID',
      'the keystore decrypts to no BLS secret key (32 bytes in [1, r-1])',
    );
  }
  // EIP-2335's pubkey field is optional; where it is given it must be the secret's.
  if (keystore.pubkey !== undefined && `0x${keystore.pubkey}` !== pubkey) {
    secret.fill(0);
    throw new PkmError(
      'KEYSTORE_PUBKEY_MISMATCH',
      `the keystore names pubkey 0x${keystore.pubkey}, but its secret's is ${pubkey}`,
    );
  }
  return { pubkey, secret };
}
