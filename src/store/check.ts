// The store's invariants (DESIGN.md "Key lifecycle"), checked by reading everything.
// Used by tests after crashes, and by `pkm db check`.

import type { StoreReads } from './contract.js';
import { type Counts, countRecord, type KeyRecord, ZERO_COUNTS } from './records.js';

export interface CheckReport {
  readonly keys: number;
  readonly pods: number;
  readonly problems: string[];
}

export async function checkStore(store: StoreReads): Promise<CheckReport> {
  const problems: string[] = [];
  // The counters compared below are the database's, not this server's last view of them.
  await store.refresh();
  const records = new Map<string, KeyRecord>();
  for await (const r of store.keyRecords()) records.set(r.pubkey, r);

  const counts: Counts = { ...ZERO_COUNTS };
  for (const r of records.values()) countRecord(counts, r, 1);

  // Each free or cooling key has exactly one index entry, at its own time; nothing else does.
  for (const bucket of ['unallocated', 'cooling'] as const) {
    const state = bucket === 'unallocated' ? 'free' : 'cooling';
    const seen = new Set<string>();
    for (const e of await store.indexEntries(bucket)) {
      const r = records.get(e.pubkey);
      if (seen.has(e.pubkey)) problems.push(`${e.pubkey} is in ${bucket} twice`);
      seen.add(e.pubkey);
      if (!r) problems.push(`${bucket} names ${e.pubkey}, which has no record`);
      else if (r.state !== state || r.since !== e.since) {
        problems.push(
          `${bucket} names ${e.pubkey} at ${e.since}, but it is ${r.state} since ${r.since}`,
        );
      }
    }
    for (const r of records.values()) {
      if (r.state === state && !seen.has(r.pubkey))
        problems.push(`${state} key ${r.pubkey} is not in ${bucket}`);
    }
  }

  // Pod records and key records agree, and no key sits in two places.
  const placed = new Map<string, string>();
  let pods = 0;
  for await (const [name, pod] of store.pods()) {
    pods++;
    if (pod.keys.length > 0) counts.pods++;
    for (const [list, state] of [
      [pod.keys, 'allocated'],
      [pod.cooling, 'cooling'],
      [pod.reported ?? [], 'reported'],
    ] as const) {
      for (const pk of list) {
        const where = `${name}/${state}`;
        const other = placed.get(pk);
        if (other !== undefined) problems.push(`${pk} is in ${other} and in ${where}`);
        placed.set(pk, where);
        const r = records.get(pk);
        if (!r) problems.push(`pod ${name} lists ${pk}, which has no record`);
        else if (r.state !== state || r.pod !== name) {
          problems.push(
            `pod ${name} lists ${pk} as ${state}, but it is ${r.state} for ${r.pod ?? 'no pod'}`,
          );
        }
      }
    }
  }
  for (const r of records.values()) {
    // A reported key is on its reporter's reported list (never handed out: not in its keys).
    const listed = r.state === 'allocated' || r.state === 'cooling' || r.state === 'reported';
    const expected = r.pod === undefined || !listed ? undefined : `${r.pod}/${r.state}`;
    if (expected !== undefined && placed.get(r.pubkey) !== expected) {
      problems.push(`${r.state} key ${r.pubkey} of ${r.pod} is missing from that pod's record`);
    }
  }

  // Derived keys: each index used once, and below the next index the store will use.
  const byPath = new Map<string, string>();
  for (const r of records.values()) {
    if (r.path === undefined) continue;
    const other = byPath.get(r.path);
    if (other !== undefined)
      problems.push(`${r.pubkey} and ${other} were both derived at ${r.path}`);
    byPath.set(r.path, r.pubkey);
    const index = Number(/^m\/12381\/3600\/(\d+)\/0\/0$/.exec(r.path)?.[1]);
    if (!(index < store.nextKeyIndex())) {
      problems.push(
        `${r.pubkey} was derived at ${r.path}, not below the next index ${store.nextKeyIndex()}`,
      );
    }
  }

  const stored = store.storedCounts();
  for (const k of Object.keys(counts) as (keyof Counts)[]) {
    if (stored[k] !== counts[k])
      problems.push(`counter ${k} is ${stored[k]}, but the store holds ${counts[k]}`);
  }
  return { keys: records.size, pods, problems };
}
