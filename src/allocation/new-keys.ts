// New key records, made from the key source at the transaction's next derivation index: the
// one way the allocator and the depositor create keys.
import type { DepositRecord } from '../deposit/deposit-data.js';
import { PkmError } from '../errors.js';
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
  /** Indexed sources: derive at these (ascending, from the next index on) instead of the next ones. */
  at?: readonly number[],
): Promise<{ records: KeyRecord[]; nextKeyIndex?: number }> {
  const first = tx.nextKeyIndex();
  if (at !== undefined && (at.length !== count || at.some((i) => i < first)))
    throw new PkmError('INTERNAL', 'derivation indexes must be new, one per key');
  const fresh =
    at === undefined
      ? await parts.keySource.make(count, first)
      : (await Promise.all(at.map((i) => parts.keySource.make(1, i)))).flat();
  const last = at === undefined ? first + count - 1 : Math.max(first - 1, ...at);
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
  return parts.keySource.indexed && count > 0 ? { records, nextKeyIndex: last + 1 } : { records };
}
