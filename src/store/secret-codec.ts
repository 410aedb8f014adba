// How secret keys are sealed in the store. Every read and write of a secret goes through a
// SecretCodec (encryption.ts): the pubkey is bound to its sealed secret.
import type { SealedSecret } from './records.js';

export interface SecretCodec {
  seal(secret: Uint8Array, pubkey: string): SealedSecret;
  open(sealed: SealedSecret, pubkey: string): Uint8Array;
  /**
   * open() for many, in order. When one does not open, those opened before it are zeroed and
   * its error is thrown: no plaintext outlives a refusal.
   */
  openMany(list: readonly SealedOf[]): Uint8Array[];
}

/** A sealed secret with the pubkey it belongs to. */
export interface SealedOf {
  readonly sealed: SealedSecret;
  readonly pubkey: string;
}
