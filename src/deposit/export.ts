// deposit_data.json: the deposit data of the store's keys, in the launchpad's format.
import type { StoredState } from '../api/key-state.js';
import type { StoreReads } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import { launchpadEntry } from './deposit-record.js';

export interface DepositFilter {
  /** Only the keys this pod holds. */
  readonly pod?: string;
  readonly state?: StoredState;
}

export async function depositEntries(store: StoreReads, filter: DepositFilter = {}) {
  const records: KeyRecord[] = [];
  if (filter.pod !== undefined) {
    records.push(...(await store.getKeys((await store.getPod(filter.pod))?.keys ?? [])));
  } else {
    for await (const r of store.keyRecords()) records.push(r);
  }
  return records
    .filter((r) => filter.state === undefined || r.state === filter.state)
    .flatMap((r) => (r.deposit ? [launchpadEntry(r.deposit)] : []));
}
