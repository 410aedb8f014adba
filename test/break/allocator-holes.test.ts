// Adversarial reproductions (reviewer of issue 11). Each `it` asserts the SAFE behaviour; a
// failure is a finding.
import { describe, expect, it } from 'vitest';
import { Allocator, type AllocatorDeps } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { fenceRestored } from '../../src/allocation/restore.js';
import { MnemonicKeys } from '../../src/keys/bip39.js';
import { type KeySource, mnemonicKeySource, randomKeySource } from '../../src/keys/source.js';
import { backupStore, restoreStore } from '../../src/store/backup.js';
import { checkStore } from '../../src/store/check.js';
import { Store } from '../../src/store/store.js';
import { FakeClock, MINUTE, openTempStore, tempDir, testKek } from '../helpers.js';

const MNEMONIC =
  'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const mnemonic = mnemonicKeySource(new MnemonicKeys(MNEMONIC));
const DELAY = 20 * MINUTE;

function allocatorOver(
  store: Store,
  clock: FakeClock,
  keySource: KeySource,
  extra: Partial<AllocatorDeps> = {},
): Allocator {
  return new Allocator({
    store,
    group: new GroupCommitter(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    keySource,
    config: { reuseDelayMs: DELAY, maxKeysPerPod: 64, maxTotalKeys: undefined },
    lookahead: 4,
    ...extra,
  });
}
const pubkeys = (a: { keys: Array<{ pubkey: string }> }) => a.keys.map((k) => k.pubkey);

describe('break: heartbeats', () => {
  it('B1 a forced-deleted pod whose old container still heartbeats does not hand its fenced keys to the new incarnation', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource);
    const k = pubkeys(await al.allocate('v-0', 2, 'uid-A'));
    // kubectl delete --force: fenced
    await al.release('v-0', { stop: 'forced', uid: 'uid-A' });
    // the old container (uid-A) still runs for its grace period / on a cut-off node and beats
    const beat = await al.heartbeat('v-0', k);
    console.log('B1 heartbeat after forced delete:', JSON.stringify(beat));
    // the new incarnation (uid-B) asks for its 2 keys
    const got = pubkeys(await al.allocate('v-0', 2, 'uid-B'));
    console.log('B1 new incarnation got the fenced keys:', got.filter((x) => k.includes(x)).length);
    expect(got.filter((x) => k.includes(x))).toEqual([]);
  });

  it('B2 a heartbeat claims a free key it was never handed (no proof of possession), then allocate hands over its secret', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource);
    const [k] = pubkeys(await al.allocate('a', 1));
    await al.release('a', { stop: 'confirmed' });
    clock.advance(DELAY);
    // 'a' is gone for good; its key is free for anyone after the delay. Pod 'thief' never had it.
    const beat = await al.heartbeat('thief', [k ?? '']);
    console.log('B2 heartbeat of a key never handed to the reporter:', JSON.stringify(beat));
    expect(beat.reclaimed).toEqual([]);
  });

  it('B3 a fenced key cooled past the delay is claimed by another pod\'s heartbeat without the liveness gate', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    let gateAsked = 0;
    const gate = {
      statuses: async (pks: readonly string[]) => {
        gateAsked++;
        return new Map(pks.map((pk) => [pk, { kind: 'live' as const }]));
      },
    };
    const al = allocatorOver(store, clock, randomKeySource, {
      liveness: gate as unknown as AllocatorDeps['liveness'],
    });
    const [k] = pubkeys(await al.allocate('a', 1));
    await al.release('a', { stop: 'forced' });
    clock.advance(DELAY);
    const beat = await al.heartbeat('other', [k ?? '']);
    console.log('B3 fenced key, heartbeat of another pod:', JSON.stringify(beat), 'gate asked', gateAsked);
    const got = pubkeys(await al.allocate('other', 1));
    console.log('B3 other then gets', got[0] === k ? 'the fenced key (secret handed out)' : 'another key');
    expect(got).not.toContain(k);
  });
});

describe('break: a recreated pod whose deletion the webhook missed', () => {
  it('B4 a new incarnation (different token uid) is handed the keys the old incarnation holds', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource);
    const k = pubkeys(await al.allocate('v-0', 1, 'uid-A'));
    // the DELETE review never arrived (server down; webhook failurePolicy Ignore); v-0 is
    // recreated with uid-B while uid-A may still run on a cut-off node
    const got = pubkeys(await al.allocate('v-0', 1, 'uid-B'));
    console.log('B4 uid-B got uid-A\'s key:', got[0] === k[0]);
    expect(got).not.toEqual(k);
  });

  it('B5 a stale kubelet DELETE (old uid) releases, as confirmed, the keys of a new incarnation whose uid is unknown', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource);
    await al.allocate('v-0', 1, 'uid-A');
    await al.release('v-0', { stop: 'unconfirmed', uid: 'uid-A' }); // graceful
    clock.advance(DELAY); // A's key cools past the delay; (or: new pod gets new keys anyway)
    // new incarnation, no token uid (no auth): forgetUid
    const kb = pubkeys(await al.allocate('v-0', 1));
    console.log('B5 recorded uid after new incarnation:', await al.holderUid('v-0'));
    // the old incarnation's late kubelet DELETE arrives now
    const released = await al.release('v-0', { stop: 'confirmed', uid: 'uid-A' });
    console.log('B5 stale review released the running incarnation\'s keys:', released);
    expect(released).not.toContain(kb[0]);
  });
});

describe('break: derivation', () => {
  it('B6 a pubkey-only reported key (index past the lookahead window) is overwritten by a later derivation and handed to another pod', async () => {
    const store = await openTempStore();
    await store.bindKeySource(mnemonic.fingerprint);
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, mnemonic, { lookahead: 4 });
    const far = mnemonic.pubkeyAt?.(6) ?? '';
    const beat = await al.heartbeat('x', [far]);
    console.log('B6 heartbeat:', JSON.stringify(beat), 'next index', store.nextKeyIndex());
    expect(await store.getKey(far)).toMatchObject({ state: 'reported', pod: 'x' });
    const got = pubkeys(await al.allocate('y', 8));
    const rec = await store.getKey(far);
    console.log('B6 y got x\'s running key:', got.includes(far), 'record now', rec?.state, rec?.pod);
    console.log('B6 check:', JSON.stringify((await checkStore(store)).problems));
    expect(got).not.toContain(far);
  });

  it('B7 restore: a key allocated in the backup but retired afterwards comes back and is handed out (not fenced)', async () => {
    const dir = await tempDir();
    const clock = new FakeClock();
    let store = await Store.open(`${dir}/data`, { kek: testKek });
    let al = allocatorOver(store, clock, randomKeySource);
    const [k] = pubkeys(await al.allocate('a', 1));
    await store.close();
    await backupStore(`${dir}/data`, `${dir}/backup.jsonl`);
    store = await Store.open(`${dir}/data`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource);
    await al.retire(k ?? '', 'slashed');
    await store.close();
    const restored = await restoreStore(`${dir}/restored`, `${dir}/backup.jsonl`, (s) =>
      fenceRestored(s, clock.now()),
    );
    console.log('B7 fenced at restore:', restored.fenced);
    store = await Store.open(`${dir}/restored`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, { restored: true });
    // 'a' is deleted and comes back (its kubelet confirms): confirmed own cooling, taken back at once
    await al.release('a', { stop: 'confirmed' });
    const again = pubkeys(await al.allocate('a', 1));
    console.log('B7 the retired (slashed) key handed out again to a:', again[0] === k);
    await al.release('a', { stop: 'confirmed' });
    clock.advance(DELAY * 2);
    const other = pubkeys(await al.allocate('z', 1));
    console.log('B7 ... and to z after the hold:', other[0] === k);
    await store.close();
    expect(again).not.toContain(k);
    expect(other).not.toContain(k);
  });

  it('B8 restore: a key the backup shows allocated to a but which moved to c afterwards is handed back to a within the hold', async () => {
    const dir = await tempDir();
    const clock = new FakeClock();
    let store = await Store.open(`${dir}/data`, { kek: testKek });
    let al = allocatorOver(store, clock, randomKeySource);
    const [k] = pubkeys(await al.allocate('a', 1));
    await store.close();
    await backupStore(`${dir}/data`, `${dir}/backup.jsonl`);
    store = await Store.open(`${dir}/data`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource);
    await al.release('a', { stop: 'confirmed' });
    clock.advance(DELAY);
    const c = pubkeys(await al.allocate('c', 1));
    expect(c).toEqual([k]); // c runs k now
    await store.close();
    await restoreStore(`${dir}/restored`, `${dir}/backup.jsonl`, (s) => fenceRestored(s, clock.now()));
    store = await Store.open(`${dir}/restored`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, { restored: true });
    // right after the restore, before c's first heartbeat, a is restarted (kubelet confirms)
    await al.release('a', { stop: 'confirmed' });
    const again = pubkeys(await al.allocate('a', 1));
    console.log('B8 a handed k while c runs it, within the restore hold:', again[0] === k);
    await store.close();
    expect(again).not.toContain(k);
  });
});
