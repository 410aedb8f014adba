// Secrets an earlier build kept in plaintext (hex), sealed at a start (encryption.ts). Apart from
// encryption-setup.ts, which store.ts opens the store with, so that neither imports the other.
import type { KeyChange, StoreContract } from './contract.js';

/**
 * Re-seals secrets an earlier build kept as hex, in atomic batches: a crash in the middle
 * leaves every record either sealed or still readable, and the next start finishes the rest.
 */
export async function resealPlaintext(store: StoreContract): Promise<number> {
  let done = 0;
  for (;;) {
    const batch: KeyChange[] = [];
    for await (const r of store.keyRecords()) {
      if (r.secret?.alg !== 'hex') continue;
      const secret = store.secrets.open(r.secret, r.pubkey);
      batch.push({ before: r, after: { ...r, secret: store.secrets.seal(secret, r.pubkey) } });
      if (batch.length === 500) break;
    }
    if (batch.length === 0) return done;
    await store.commit({ keys: batch, pods: [] });
    done += batch.length;
  }
}
