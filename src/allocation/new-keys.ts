// New key records, made from the key source at the transaction's next derivation index: the
// one way the allocator and the depositor create keys.
import type { DepositRecord } from '../deposit/deposit-record.js';
import { PkmError } from '../errors.js';
import type { KeySource, NewKey } from '../keys/source.js';
import type { StoreContract } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';

/**
 * --new-keys: whether an allocation the pool cannot fill makes new keys for it (`always`), or
 * fails with POOL_EXHAUSTED and changes nothing (`never`: keys come only from imports). It
 * governs keys made to be handed out; deriving an index only to recognise a key a pod reports
 * (heartbeat.ts) makes no key for anyone and is not affected.
 */
export const NEW_KEYS_POLICIES = ['always', 'never'] as const;
export type NewKeysPolicy = (typeof NEW_KEYS_POLICIES)[number];

export interface NewKeyParts {
  readonly store: StoreContract;
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
  // An array literal, as Store.getKeys says why: most allocations make no key.
  if (count === 0) return { records: [] };
  const { keySource } = parts;
  // The indexes to try, in order: the planned ones, then (or else) every next one.
  const planned = [...(at ?? [])];
  let after = at === undefined ? first : Math.max(first, ...at.map((i) => i + 1));
  const nextIndex = () => planned.shift() ?? after++;
  const fresh: NewKey[] = [];
  let last = first - 1;
  while (fresh.length < count) {
    if (!keySource.indexed) {
      fresh.push(...(await keySource.make(count - fresh.length, 0)));
      continue;
    }
    const index = nextIndex();
    const [key] = await keySource.make(1, index);
    last = Math.max(last, index);
    // A derived key the store already knows (a pod reported it, beyond the lookahead) is
    // never derived again: its index is passed over, and used up with the others.
    if (key && !(await tx.getKey(key.pubkey))) fresh.push(key);
  }
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
  return keySource.indexed && count > 0 ? { records, nextKeyIndex: last + 1 } : { records };
}
