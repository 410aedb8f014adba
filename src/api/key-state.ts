// A key's state, as the store keeps it and the API shows it (counts, ?state=, a retired key).
import { z } from 'zod';

/** A key's state as stored. A `cooling` key whose reuse delay has passed counts as free. */
export const StoredState = z.enum([
  'free',
  'allocated',
  'cooling',
  'retired',
  /** A deposit transaction was signed and recorded; its receipt is awaited. */
  'depositing',
  /** The deposit reverted or could not be sent: kept, for an operator to retry or retire. */
  'deposit-failed',
  /** Two pods run it (a heartbeat said so): never handed out until an operator resolves it. */
  'conflict',
  /**
   * A pod reported running it, and the store had no record of it (lost with an older copy of
   * the store, say): held by that pod, never handed out, flagged for an operator. A key derived
   * from the mnemonic keeps its secret; any other is known by its pubkey only.
   */
  'reported',
]);
export type StoredState = z.infer<typeof StoredState>;
