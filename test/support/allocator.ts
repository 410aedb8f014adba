// The real Allocator over a store, with the test's clocks: what the allocation tests drive.
import { Allocator, type AllocatorDeps } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { MnemonicKeys } from '../../src/keys/bip39.js';
import { type KeySource, mnemonicKeySource } from '../../src/keys/source.js';
import type { StoreContract } from '../../src/store/contract.js';
import { type FakeClock, MINUTE } from '../helpers.js';

/** BIP-39's own test mnemonic: public, holds nothing. */
export const TEST_MNEMONIC =
  'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
export const mnemonic = mnemonicKeySource(new MnemonicKeys(TEST_MNEMONIC));
export const DELAY = 20 * MINUTE;

export function allocatorOver(
  store: StoreContract,
  clock: FakeClock,
  keySource: KeySource,
  extra: Partial<AllocatorDeps> = {},
): Allocator {
  return new Allocator({
    store,
    group: GroupCommitter.of(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    keySource,
    config: { reuseDelayMs: DELAY, maxKeysPerPod: 64, maxTotalKeys: undefined },
    lookahead: 64,
    ...extra,
  });
}

export const pubkeys = (a: { keys: Array<{ pubkey: string }> }) => a.keys.map((k) => k.pubkey);

/**
 * Heartbeat options of a pod that really runs these keys, so it can prove possession of each
 * (keys/proof.ts; the HTTP tests sign real proofs, these allocator-level tests take them as read).
 */
export const proving = (keys: readonly string[]) => ({ proven: new Set(keys) });
