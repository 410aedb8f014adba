// Opening a store's secrets: unwrap (or, for a store without one, make) the data key.
import { MetaKey } from './buckets.js';
import {
  gcmCodec,
  kekId,
  lockedCodec,
  newDataKey,
  unwrapDataKey,
  type WrappedKey,
  wrapDataKey,
} from './encryption.js';
import type { SecretCodec } from './secret-codec.js';
import type { KeyChange, Store } from './store.js';

export { lockedCodec };

interface MetaBucket {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
}

export async function openSecrets(
  meta: MetaBucket,
  loadKek: (hasDataKey: boolean) => Promise<Buffer>,
): Promise<SecretCodec> {
  const stored = await meta.get(MetaKey.dataKey);
  const kek = await loadKek(stored !== undefined);
  if (stored !== undefined)
    return gcmCodec(unwrapDataKey(JSON.parse(stored) as WrappedKey, kek), kekId(kek));
  const dek = newDataKey();
  await meta.put(MetaKey.dataKey, JSON.stringify(wrapDataKey(dek, kek)));
  return gcmCodec(dek, kekId(kek));
}

/**
 * Re-seals secrets an earlier build kept as hex, in atomic batches: a crash in the middle
 * leaves every record either sealed or still readable, and the next start finishes the rest.
 */
export async function resealPlaintext(store: Store): Promise<number> {
  let done = 0;
  for (;;) {
    const batch: KeyChange[] = [];
    for await (const r of store.keyRecords()) {
      if (r.secret.alg !== 'hex') continue;
      const secret = store.secrets.open(r.secret, r.pubkey);
      batch.push({ before: r, after: { ...r, secret: store.secrets.seal(secret, r.pubkey) } });
      if (batch.length === 500) break;
    }
    if (batch.length === 0) return done;
    await store.commit({ keys: batch, pods: [] });
    done += batch.length;
  }
}
