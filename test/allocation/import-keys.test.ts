// Importing keystores (issue 14) through the real allocator, over a real store of each backend: the official
// EIP-2335 vectors, every refusal, idempotence, fencing, never-validated keys, their EIP-3076
// history, and a mnemonic store whose derivable key is imported.
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { type ImportSource, importKeys } from '../../src/allocation/import-keys.js';
import { toInterchange } from '../../src/api/interchange.js';
import { BeaconLivenessGate } from '../../src/beacon/liveness.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { randomKey, toHex } from '../../src/keys/bls.js';
import { KdfPool } from '../../src/keys/kdf-pool.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import { randomKeySource } from '../../src/keys/source.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { fakeBeacon } from '../beacon/fake-beacon.js';
import { FakeClock, onCleanup } from '../helpers.js';
import { keystoreCases } from '../keys/vectors.js';
import { allocatorOver, DELAY, mnemonic, pubkeys } from '../support/allocator.js';
import { eachBackend } from '../support/backends.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const ROOT = `0x${'ab'.repeat(32)}`;
const OTHER_ROOT = `0x${'cd'.repeat(32)}`;

function pool(): KdfPool {
  const p = new KdfPool(2);
  onCleanup(() => p.close());
  return p;
}

async function keystores(n: number, password = 'pw', kdf: 'scrypt' | 'pbkdf2' = 'scrypt') {
  const keys = Array.from({ length: n }, () => randomKey());
  const sources: ImportSource[] = [];
  for (const [i, k] of keys.entries()) {
    const keystore = await encryptKeystore(
      k.secretKey,
      password,
      { pubkey: k.pubkey, path: '' },
      i % 2 === 0 ? kdf : 'pbkdf2',
      CHEAP,
    );
    sources.push({ name: `ks-${i}.json`, keystore, password });
  }
  return { keys, sources };
}

eachBackend((backend) => {
  async function setup(opts: { beacon?: boolean } = {}) {
    const place = await backend.place();
    const store = await place.open();
    const clock = new FakeClock();
    const allocator = allocatorOver(
      store,
      clock,
      randomKeySource,
      opts.beacon ? { beacon: { genesisValidatorsRoot: ROOT, genesisTime: 1_600_000_000 } } : {},
    );
    return { store, clock, allocator, raw: () => place.raw() };
  }

  describe('keys import', () => {
    it('opens the official EIP-2335 vectors (scrypt and pbkdf2) and seals their secrets', async () => {
      const { store, allocator } = await setup();
      const cases = keystoreCases();
      expect(cases.map((c) => c.name)).toEqual(
        expect.arrayContaining(['pbkdf2-0.json', 'scrypt-0.json']),
      );
      const result = await allocator.importKeys(
        pool(),
        cases.map((c) => ({ name: c.name, keystore: c.keystore, password: c.password })),
        { neverValidated: false },
      );
      expect(result.failed).toEqual([]);
      for (const c of cases) {
        const pubkey = `0x${c.pubkey}`;
        const record = await store.getKey(pubkey);
        expect(record).toMatchObject({ state: 'cooling', stop: 'fenced' });
        expect(record?.pod).toBeUndefined();
        if (record?.secret === undefined) throw new Error('no secret');
        expect(toHex(store.secrets.open(record.secret, pubkey))).toBe(c.secret);
      }
      // The two vectors of each KDF share their secret: the second of each is the same key.
      expect(new Set(result.imported).size + result.skipped.length).toBe(cases.length);
      expect((await checkStore(store)).problems).toEqual([]);
      expect(store.storedCounts()).toMatchObject({
        cooling: result.imported.length,
        fenced: result.imported.length,
      });
    });

    it('refuses each bad keystore with its code and name, imports the others, and stays consistent', async () => {
      const { store, allocator } = await setup();
      const { keys, sources } = await keystores(3);
      const good = sources.slice(0, 3);
      const spare = randomKey();
      const spareKeystore = await encryptKeystore(
        spare.secretKey,
        'pw',
        { pubkey: spare.pubkey, path: '' },
        'pbkdf2',
        CHEAP,
      );
      const wrong = { name: 'wrong.json', keystore: spareKeystore, password: 'nope' };
      const v3 = { name: 'v3.json', keystore: { ...spareKeystore, version: 3 }, password: 'pw' };
      const corrupt = { name: 'corrupt.json', keystore: { hello: 'world' }, password: 'pw' };
      const other = randomKey();
      const lying = {
        name: 'lying.json',
        keystore: await encryptKeystore(
          other.secretKey,
          'pw',
          { pubkey: keys[0]?.pubkey ?? '', path: '' },
          'pbkdf2',
          CHEAP,
        ),
        password: 'pw',
      };
      // A record under a pubkey whose sealed secret is another key's (a damaged store).
      const clash = randomKey();
      await GroupCommitter.of(store).run(async (tx) =>
        tx.stage({
          keys: [
            {
              after: {
                pubkey: clash.pubkey,
                secret: store.secrets.seal(other.secretKey, clash.pubkey),
                state: 'retired',
                since: 1,
                createdAt: 1,
                history: [],
              },
            },
          ],
          pods: [],
        }),
      );
      const conflicting = {
        name: 'conflict.json',
        keystore: await encryptKeystore(
          clash.secretKey,
          'pw',
          { pubkey: clash.pubkey, path: '' },
          'pbkdf2',
          CHEAP,
        ),
        password: 'pw',
      };
      const result = await allocator.importKeys(
        pool(),
        [...good, wrong, v3, corrupt, lying, conflicting],
        { neverValidated: false, chunkSize: 2 },
      );
      const byName = Object.fromEntries(result.failed.map((f) => [f.source, f.code]));
      expect(byName).toEqual({
        'wrong.json': 'KEYSTORE_PASSWORD',
        'v3.json': 'KEYSTORE_INVALID',
        'corrupt.json': 'KEYSTORE_INVALID',
        'lying.json': 'KEYSTORE_PUBKEY_MISMATCH',
        'conflict.json': 'KEYSTORE_CONFLICT',
      });
      expect([...result.imported].sort()).toEqual(keys.map((k) => k.pubkey).sort());
      expect(await store.getKey(other.pubkey)).toBeUndefined();
      expect(await store.getKey(spare.pubkey)).toBeUndefined();
      const record = await store.getKey(clash.pubkey);
      if (record?.secret === undefined) throw new Error('no record');
      expect(toHex(store.secrets.open(record.secret, clash.pubkey))).toBe(toHex(other.secretKey));
      expect((await checkStore(store)).problems).toEqual([]);
      const text = JSON.stringify(result);
      for (const k of [...keys, other, clash, spare])
        expect(text).not.toContain(toHex(k.secretKey).slice(2));
    });

    it('changes nothing when the same keystores come again (byte-identical store)', async () => {
      const { allocator, raw } = await setup({ beacon: true });
      const { keys, sources } = await keystores(5);
      const history = toInterchange(ROOT, [
        [keys[0]?.pubkey ?? '', { lastBlockSlot: 9, lastSourceEpoch: 1, lastTargetEpoch: 2 }],
      ]);
      const first = await allocator.importKeys(pool(), sources, {
        neverValidated: false,
        interchange: history,
        chunkSize: 2,
      });
      expect(first.imported).toHaveLength(5);
      const before = await raw();
      const again = await allocator.importKeys(pool(), sources, {
        neverValidated: false,
        interchange: history,
        chunkSize: 2,
      });
      expect(again).toMatchObject({ imported: [], failed: [] });
      expect(again.skipped).toHaveLength(5);
      expect(await raw()).toEqual(before);
    });

    it('fences imported keys: no pod gets one before the reuse delay, not even after a wall-clock step', async () => {
      const { store, clock, allocator } = await setup();
      const { keys, sources } = await keystores(3);
      await allocator.importKeys(pool(), sources, { neverValidated: false });
      const imported = new Set(keys.map((k) => k.pubkey));
      const a = pubkeys(await allocator.allocate('a', 3));
      expect(a.filter((pk) => imported.has(pk))).toEqual([]);
      clock.jumpWall(2 * DELAY); // no time passed on the monotonic clock
      const b = pubkeys(await allocator.allocate('b', 3));
      expect(b.filter((pk) => imported.has(pk))).toEqual([]);
      clock.advance(DELAY);
      const c = pubkeys(await allocator.allocate('c', 3));
      expect(new Set(c)).toEqual(imported);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('hands out --never-validated keys at once', async () => {
      const { allocator } = await setup();
      const { keys, sources } = await keystores(2);
      await allocator.importKeys(pool(), sources, { neverValidated: true });
      expect(new Set(pubkeys(await allocator.allocate('a', 2)))).toEqual(
        new Set(keys.map((k) => k.pubkey)),
      );
    });

    it('merges the keys’ history and hands it out with them; other entries are ignored', async () => {
      const { store, allocator } = await setup({ beacon: true });
      const { keys, sources } = await keystores(2);
      const stranger = randomKey().pubkey;
      const history = toInterchange(ROOT, [
        [keys[0]?.pubkey ?? '', { lastBlockSlot: 100, lastSourceEpoch: 3, lastTargetEpoch: 4 }],
        [stranger, { lastBlockSlot: 1 }],
      ]);
      const result = await allocator.importKeys(pool(), sources, {
        neverValidated: true,
        interchange: history,
      });
      expect(result.protected).toEqual([keys[0]?.pubkey]);
      expect(result.protectionIgnored).toEqual([stranger]);
      expect(await store.getMeta(MetaKey.genesisValidatorsRoot)).toBe(ROOT);
      const handed = await allocator.allocate('a', 2);
      const first = handed.keys.find((k) => k.pubkey === keys[0]?.pubkey);
      expect(first?.protection).toEqual({
        lastBlockSlot: 100,
        lastSourceEpoch: 3,
        lastTargetEpoch: 4,
      });
      expect(handed.genesisValidatorsRoot).toBe(ROOT);
    });

    it('refuses history of another chain, or of no known chain, and imports nothing', async () => {
      const rooted = await setup({ beacon: true });
      const { keys, sources } = await keystores(2);
      const before = await rooted.raw();
      const wrong = toInterchange(OTHER_ROOT, [[keys[0]?.pubkey ?? '', { lastBlockSlot: 1 }]]);
      const refused = allocatorOver(rooted.store, rooted.clock, randomKeySource, {
        beacon: { genesisValidatorsRoot: ROOT },
      }).importKeys(pool(), sources, { neverValidated: false, interchange: wrong });
      await expect(refused).rejects.toMatchObject({ code: 'INTERCHANGE_MISMATCH' });
      await expect(refused).rejects.toThrow(new RegExp(`${OTHER_ROOT}.*${ROOT}`));
      expect(await rooted.raw()).toEqual(before);

      const bare = await setup();
      const empty = await bare.raw();
      await expect(
        bare.allocator.importKeys(pool(), sources, { neverValidated: false, interchange: wrong }),
      ).rejects.toMatchObject({ code: 'GENESIS_ROOT_UNKNOWN' });
      expect(await bare.raw()).toEqual(empty);
    });

    it('a mnemonic store never hands out an imported key that is derivable at a later index twice', async () => {
      const store = await backend.open();
      await store.bindKeySource(mnemonic.fingerprint);
      const clock = new FakeClock();
      const allocator = allocatorOver(store, clock, mnemonic);
      const [derived] = await mnemonic.make(1, 2);
      if (!derived) throw new Error('no key');
      const keystore = await encryptKeystore(
        derived.secretKey,
        'pw',
        { pubkey: derived.pubkey, path: '' },
        'pbkdf2',
        CHEAP,
      );
      // Never validated: free at once, so it competes with derivation at its own index.
      await allocator.importKeys(pool(), [{ name: 'ks.json', keystore, password: 'pw' }], {
        neverValidated: true,
      });
      const a = pubkeys(await allocator.allocate('a', 4));
      const b = pubkeys(await allocator.allocate('b', 4));
      const all = [...a, ...b];
      expect(new Set(all).size).toBe(all.length);
      expect(all.filter((pk) => pk === derived.pubkey)).toHaveLength(1);
      // Index 2 was passed over (its key was in the store already): 7 derived at indexes 0..7.
      expect(store.nextKeyIndex()).toBe(8);
      expect((await checkStore(store)).problems).toEqual([]);
    });

    it('imports offline in chunks: each chunk a batch of its own', async () => {
      const store = await backend.open();
      const { sources } = await keystores(7);
      const counts: number[] = [];
      const result = await importKeys(
        { store, group: GroupCommitter.of(store), clock: Date.now },
        pool(),
        sources,
        { neverValidated: false, chunkSize: 3, onProgress: (p) => counts.push(p.imported) },
      );
      expect(result.imported).toHaveLength(7);
      expect([...new Set(counts)]).toEqual([0, 3, 6, 7]);
      const events = await store.events(0, 100);
      expect(events.map((e) => e.type)).toEqual(Array(7).fill('import'));
    });
  });

  describe('keys import and the liveness gate (--beacon-url)', () => {
    it('an imported key the beacon node sees live goes to no pod, even after the reuse delay; once not live, it does', async () => {
      const store = await backend.open();
      const clock = new FakeClock();
      const beacon = await fakeBeacon();
      onCleanup(() => beacon.close());
      beacon.state.now = clock.now;
      const allocator = allocatorOver(store, clock, randomKeySource, {
        liveness: new BeaconLivenessGate(beacon.url, NETWORKS.hoodi),
      });
      const { keys, sources } = await keystores(1);
      const pk = keys[0]?.pubkey ?? '';
      expect(
        (await allocator.importKeys(pool(), sources, { neverValidated: false })).imported,
      ).toEqual([pk]);
      // It still runs where it came from: the beacon node sees its validator attest.
      beacon.state.validators.set(pk, { index: '77', status: 'active_ongoing', slashed: false });
      beacon.state.live.add('77');
      clock.advance(DELAY);
      expect(pubkeys(await allocator.allocate('p', 1))).not.toContain(pk);
      expect(await store.getKey(pk)).toMatchObject({ state: 'cooling', stop: 'fenced' });
      // The old validator client stopped: no longer live, so the key may move.
      beacon.state.live.delete('77');
      clock.advance(DELAY);
      expect(pubkeys(await allocator.allocate('q', 1))).toContain(pk);
      expect((await checkStore(store)).problems).toEqual([]);
    });
  });
});
