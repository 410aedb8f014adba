// Where new keys come from. Random keys now; a mnemonic-backed source derives them instead.
import { type BlsKey, randomKey } from './bls.js';

export interface NewKey extends BlsKey {
  /** EIP-2334 path, for derived keys. */
  readonly path?: string;
}

export interface KeySource {
  next(): NewKey;
}

export const randomKeySource: KeySource = { next: randomKey };
