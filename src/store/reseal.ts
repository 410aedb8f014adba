// Secrets an earlier build kept in plaintext (hex), sealed at a start (encryption.ts). Apart from
// encryption-setup.ts, which store.ts opens the store with, so that neither imports the other.
import { MetaKey } from './buckets.js';
import type { KeyChange, StoreContract } from './contract.js';

/**
 * Re-seals secrets an earlier build kept as hex, in atomic batches: a crash in the middle
 * leaves every record either sealed or still readable, and the next start finishes the rest.
 * A scan that finds none left notes it in the store (MetaKey.secretsSealed), so that later
 * starts skip the scan: it read and checked every key record, a second with 100,000 keys
 * (issue 17, point 5).
 */
export async function resealPlaintext(store: StoreContract): Promise<number> {
  if ((await store.getMeta(MetaKey.secretsSealed)) !== undefined) return 0;
  let done = 0;
  for (;;) {
    const batch: KeyChange[] = [];
    let read = 0;
    for await (const r of store.keyRecords()) {
      read++;
      if (r.secret?.alg !== 'hex') continue;
      const secret = store.secrets.open(r.secret, r.pubkey);
      batch.push({ before: r, after: { ...r, secret: store.secrets.seal(secret, r.pubkey) } });
      if (batch.length === 500) break;
    }
    if (batch.length === 0) {
      // An empty store has nothing to scan: it is noted once it holds keys.
      if (read > 0)
        await store.commit({ keys: [], pods: [], meta: [[MetaKey.secretsSealed, '1']] });
      return done;
    }
    await store.commit({ keys: batch, pods: [] });
    done += batch.length;
  }
}
