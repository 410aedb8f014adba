// --mnemonic-start-index N over a real LevelDB and real HTTP: the store's next derivation index
// only ever grows to N (one synced batch with its audit event, at the start, before anything is
// handed out), never below what the store reached, and a key from an index under N that a pod
// reports is never handed out.
import { mnemonicToSeedSync } from '@scure/bip39';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import { deriveSkAtPath, secretKeyBytes } from '../../src/keys/eip2333.js';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { prepareStore } from '../../src/server/startup.js';
import { checkStore } from '../../src/store/check.js';
import { Store } from '../../src/store/store.js';
import {
  type AllocationBody,
  FakeClock,
  http,
  onCleanup,
  startTestServer,
  tempDir,
  testKek,
} from '../helpers.js';
import { allocatorOver, mnemonic, proving, pubkeys, TEST_MNEMONIC } from '../support/allocator.js';

/** What `pkm server --mnemonic-file F --mnemonic-start-index N` does to the store at its start. */
async function startWith(store: Store, startIndex: number): Promise<void> {
  const config = parseServerConfig({
    mnemonicFile: '/not/read/here',
    mnemonicStartIndex: String(startIndex),
  });
  await prepareStore(store, GroupCommitter.of(store), config, mnemonic, createLogger('silent'));
}

async function openAt(dir: string): Promise<Store> {
  const store = await Store.open(dir, { kek: testKek });
  onCleanup(() => store.close());
  return store;
}

/** The signing key at `path`, derived from the seed straight down the path (EIP-2333). */
function keyAt(path: string): { pubkey: string; secretKey: string } {
  const sk = secretKeyBytes(deriveSkAtPath(mnemonicToSeedSync(TEST_MNEMONIC), path));
  return { pubkey: publicKeyOf(sk), secretKey: `0x${Buffer.from(sk).toString('hex')}` };
}

async function allocate(store: Store, pod: string, count: number) {
  const { url } = await startTestServer({ store, keySource: mnemonic });
  const res = await http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count });
  expect(res.status).toBe(200);
  return res.body.keys;
}

describe('--mnemonic-start-index', () => {
  it('a fresh store derives its first key at index N, durably, with an audit event', async () => {
    const dir = await tempDir();
    let store = await openAt(dir);
    await startWith(store, 7);
    expect(store.nextKeyIndex()).toBe(7);
    const [event] = await store.lastEvents(new Set(['skip']), 1);
    expect(event?.detail).toBe(
      'derivation indexes 0..6 were used elsewhere (--mnemonic-start-index 7): the next index is now 7',
    );
    // Synced and on disk: a reopened store starts from 7 too.
    await store.close();
    store = await openAt(dir);
    expect(store.nextKeyIndex()).toBe(7);

    const keys = await allocate(store, 'a', 2);
    expect(keys.map((k) => k.path)).toEqual(['m/12381/3600/7/0/0', 'm/12381/3600/8/0/0']);
    for (const k of keys)
      expect(keyAt(k.path ?? '')).toEqual({ pubkey: k.pubkey, secretKey: k.secretKey });
    expect(store.nextKeyIndex()).toBe(9);
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('moves a store behind N up to N, and leaves the keys it derived where they are', async () => {
    const store = await openAt(await tempDir());
    await store.bindKeySource(mnemonic.fingerprint);
    const early = await allocate(store, 'a', 3);
    expect(store.nextKeyIndex()).toBe(3);
    await startWith(store, 10);
    expect(store.nextKeyIndex()).toBe(10);
    const [event] = await store.lastEvents(new Set(['skip']), 1);
    expect(event?.detail).toMatch(/^derivation indexes 3\.\.9 were used elsewhere/);
    const later = await allocate(store, 'b', 1);
    expect(later.map((k) => k.path)).toEqual(['m/12381/3600/10/0/0']);
    for (const k of early) expect(await store.getKey(k.pubkey)).toMatchObject({ pod: 'a' });
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('keeps the next index of a store past N, and a lower N later never moves it back', async () => {
    const store = await openAt(await tempDir());
    await store.bindKeySource(mnemonic.fingerprint);
    await allocate(store, 'a', 4);
    // The first start notes that every secret is sealed (reseal.ts); the next ones write nothing.
    await startWith(store, 4);
    for (const n of [2, 4, 0]) {
      const before = await store.rawEntries();
      await startWith(store, n);
      expect(store.nextKeyIndex()).toBe(4);
      expect(await store.rawEntries()).toEqual(before); // nothing written at all
    }
    await startWith(store, 20);
    for (const n of [19, 5, 0]) {
      const before = await store.rawEntries();
      await startWith(store, n);
      expect(store.nextKeyIndex()).toBe(20);
      expect(await store.rawEntries()).toEqual(before);
    }
    expect((await allocate(store, 'b', 1)).map((k) => k.path)).toEqual(['m/12381/3600/20/0/0']);
  });

  it('never hands out a key from below N that a pod reports: it is not this store’s to give', async () => {
    const store = await openAt(await tempDir());
    await startWith(store, 5);
    const clock = new FakeClock();
    const allocator = allocatorOver(store, clock, mnemonic);
    const below = mnemonic.pubkeyAt?.(2) ?? '';
    const alsoBelow = mnemonic.pubkeyAt?.(4) ?? '';
    // With a proof: recorded as the reporter's (reported), never handed out, index untouched.
    const proven = await allocator.heartbeat('elsewhere', [below], proving([below]));
    expect(proven.reported).toEqual([below]);
    expect(await store.getKey(below)).toMatchObject({ state: 'reported', pod: 'elsewhere' });
    // Without a proof: refused, nothing recorded.
    const unproven = await allocator.heartbeat('other', [alsoBelow]);
    expect(unproven.refused).toEqual([alsoBelow]);
    expect(await store.getKey(alsoBelow)).toBeUndefined();
    expect(store.nextKeyIndex()).toBe(5);

    const given = pubkeys(await allocator.allocate('a', 3));
    expect(given).not.toContain(below);
    expect(given).not.toContain(alsoBelow);
    const paths = await Promise.all(given.map(async (pk) => (await store.getKey(pk))?.path));
    expect(paths).toEqual(['m/12381/3600/5/0/0', 'm/12381/3600/6/0/0', 'm/12381/3600/7/0/0']);
    expect((await checkStore(store)).problems).toEqual([]);
  });
});
