// A store filled with n free keys whose secrets are random 32-byte values (not BLS keys: the
// tests that use this check sealing and moving secrets, and real keys would take minutes).
import { randomBytes } from 'node:crypto';
import type { StoreContract } from '../../src/store/contract.js';
import type { KeyRecord } from '../../src/store/records.js';

/**
 * Commits n keys in batches; returns each pubkey's secret as hex. `seal` stores each secret
 * (default: the store's encryption; bench/auth passes plain hex as its unencrypted baseline).
 */
export async function seedKeys(
  store: StoreContract,
  n: number,
  seal: (secret: Uint8Array, pubkey: string) => KeyRecord['secret'] = (s, pk) =>
    store.secrets.seal(s, pk),
): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  for (let done = 0; done < n; ) {
    const keys: Array<{ after: KeyRecord }> = [];
    for (; done < n && keys.length < 500; done++) {
      const pubkey = `0x${randomBytes(48).toString('hex')}`;
      const secret = randomBytes(32);
      secrets.set(pubkey, secret.toString('hex'));
      keys.push({
        after: {
          pubkey,
          secret: seal(secret, pubkey),
          state: 'free',
          since: 1,
          createdAt: 1,
          history: [{ at: 1, event: 'created' }],
        },
      });
    }
    await store.commit({ keys, pods: [] });
  }
  return secrets;
}

/** Every secret opens with the store's key ring and equals what was sealed. */
export async function secretsOf(store: StoreContract): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const r of store.keyRecords())
    if (r.secret)
      found.set(r.pubkey, Buffer.from(store.secrets.open(r.secret, r.pubkey)).toString('hex'));
  return found;
}
