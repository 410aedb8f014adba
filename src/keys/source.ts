// Where new keys come from: random keys, or keys derived from a mnemonic at EIP-2334 indexes.
import { setImmediate as nextTick } from 'node:timers/promises';
import type { MnemonicKeys } from './bip39.js';
import { type NewKey, randomKey } from './bls.js';

export type { NewKey } from './bls.js';

export interface KeySource {
  /** True when keys are derived at indexes: the store then records the next index. */
  readonly indexed: boolean;
  /** Identifies a mnemonic source (see MnemonicKeys.fingerprint). */
  readonly fingerprint: string | undefined;
  /** Makes `count` keys; an indexed source derives them at firstIndex, firstIndex + 1, ... */
  make(count: number, firstIndex: number): Promise<NewKey[]>;
  /** An indexed source: the public key derived at `index` (cheaper than make). */
  pubkeyAt?(index: number): string;
}

/** Key making is CPU work (a mnemonic key takes ~20 ms): let other requests in between keys. */
async function each(count: number, make: (i: number) => NewKey): Promise<NewKey[]> {
  const keys: NewKey[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await nextTick();
    keys.push(make(i));
  }
  return keys;
}

export const randomKeySource: KeySource = {
  indexed: false,
  fingerprint: undefined,
  make: (count) => each(count, randomKey),
};

export function mnemonicKeySource(keys: MnemonicKeys): KeySource {
  return {
    indexed: true,
    fingerprint: keys.fingerprint,
    make: (count, firstIndex) => each(count, (i) => keys.signingKey(firstIndex + i)),
    pubkeyAt: (index) => keys.signingPubkey(index),
  };
}
