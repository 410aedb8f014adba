// New key records, made from the key source at the transaction's next derivation index: the
// one way the allocator and the depositor create keys.
import type { DepositRecord } from '../deposit/deposit-data.js';
import type { KeySource, NewKey } from '../keys/source.js';
import type { KeyRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Transaction } from './transaction.js';

export interface NewKeyParts {
  readonly store: Store;
  readonly keySource: KeySource;
  readonly makeDeposit?: ((key: NewKey) => DepositRecord) | undefined;
}

/**
 * `count` fresh records in `state`, and the next index to stage with them (indexed sources
 * only): an index is recorded in the same batch as the key derived at it.
 */
export async function newKeyRecords(
  tx: Transaction,
  parts: NewKeyParts,
  count: number,
  state: 'allocated' | 'depositing',
  now: number,
): Promise<{ records: KeyRecord[]; nextKeyIndex?: number }> {
  const first = tx.nextKeyIndex();
  const fresh = await parts.keySource.make(count, first);
  const records = fresh.map(
    (k): KeyRecord => ({
      pubkey: k.pubkey,
      secret: parts.store.secrets.seal(k.secretKey, k.pubkey),
      state,
      since: now,
      createdAt: now,
      history: [{ at: now, event: 'created' }],
      ...(k.path === undefined ? {} : { path: k.path }),
      ...(parts.makeDeposit ? { deposit: parts.makeDeposit(k) } : {}),
    }),
  );
  return parts.keySource.indexed && count > 0
    ? { records, nextKeyIndex: first + count }
    : { records };
}
