// Faults an adversarial review of the safety rules found (issue 11), kept as regression tests:
// each asserts the safe behaviour.
import { describe, expect, it } from 'vitest';
import { fenceRestored } from '../../src/allocation/restore.js';
import { BeaconLivenessGate } from '../../src/beacon/liveness.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { randomKeySource } from '../../src/keys/source.js';
import { backupStore, restoreStore } from '../../src/store/backup.js';
import { checkStore } from '../../src/store/check.js';
import { Store } from '../../src/store/store.js';
import { fakeBeacon } from '../beacon/fake-beacon.js';
import { FakeClock, onCleanup, openTempStore, tempDir, testKek } from '../helpers.js';
import { allocatorOver, DELAY, mnemonic, proving, pubkeys } from '../support/allocator.js';

describe('break: heartbeats', () => {
  it('B1 a forced-deleted pod whose old container still heartbeats does not hand its fenced keys to the new incarnation', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    const k = pubkeys(await al.allocate('v-0', 2, 'uid-A'));
    // kubectl delete --force: fenced
    await al.release('v-0', { stop: 'forced', uid: 'uid-A' });
    // the old container (uid-A) still runs for its grace period / on a cut-off node and beats
    expect((await al.heartbeat('v-0', k)).stillCooling).toEqual(k);
    // the new incarnation (uid-B) asks for its 2 keys
    const got = pubkeys(await al.allocate('v-0', 2, 'uid-B'));
    expect(got.filter((x) => k.includes(x))).toEqual([]);
  });

  it('B2 a heartbeat claims no free key for a pod that was never handed it (no proof of possession): its secret never goes there', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    const [k] = pubkeys(await al.allocate('a', 1));
    await al.release('a', { stop: 'confirmed' });
    clock.advance(DELAY);
    // 'a' is gone for good; its key is free for anyone after the delay. Pod 'thief' never had it.
    const beat = await al.heartbeat('thief', [k ?? '']);
    expect(beat.reclaimed).toEqual([]);
  });

  it("B3 a fenced key cooled past the delay is claimed by another pod's heartbeat without the liveness gate", async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const beacon = await fakeBeacon();
    onCleanup(() => beacon.close());
    beacon.state.now = clock.now;
    const al = allocatorOver(store, clock, randomKeySource, {
      liveness: new BeaconLivenessGate(beacon.url, NETWORKS.hoodi),
    });
    const [k] = pubkeys(await al.allocate('a', 1));
    // The old holder still runs it: the beacon node sees it live.
    beacon.state.validators.set(k ?? '', { index: '9', status: 'active_ongoing', slashed: false });
    beacon.state.live.add('9');
    await al.release('a', { stop: 'forced' });
    clock.advance(DELAY);
    const beat = await al.heartbeat('other', [k ?? '']);
    expect(beat.reclaimed).toEqual([]);
    const got = pubkeys(await al.allocate('other', 1));
    expect(got).not.toContain(k);
  });
});

describe('break: a recreated pod whose deletion the webhook missed', () => {
  it('B4 a new incarnation (another token uid) is never handed the keys the old one holds: they are fenced', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    const k = pubkeys(await al.allocate('v-0', 1, 'uid-A'));
    // the DELETE review never arrived (server down; webhook failurePolicy Ignore); v-0 is
    // recreated with uid-B while uid-A may still run on a cut-off node
    const got = pubkeys(await al.allocate('v-0', 1, 'uid-B'));
    expect(got).not.toEqual(k);
  });

  it('B5 a stale kubelet DELETE (an earlier uid) never releases the keys of a new incarnation whose uid is unknown', async () => {
    const store = await openTempStore();
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    await al.allocate('v-0', 1, 'uid-A');
    await al.release('v-0', { stop: 'unconfirmed', uid: 'uid-A' }); // graceful
    clock.advance(DELAY); // A's key cools past the delay; (or: new pod gets new keys anyway)
    // new incarnation, no token uid (no auth): forgetUid
    const kb = pubkeys(await al.allocate('v-0', 1));
    // the old incarnation's late kubelet DELETE arrives now
    const released = await al.release('v-0', { stop: 'confirmed', uid: 'uid-A' });
    expect(released).not.toContain(kb[0]);
  });
});

describe('break: derivation', () => {
  it('B6 a pubkey-only reported key (its index past the lookahead) is never derived again nor handed to another pod', async () => {
    const store = await openTempStore();
    await store.bindKeySource(mnemonic.fingerprint);
    const clock = new FakeClock();
    const al = allocatorOver(store, clock, mnemonic, { lookahead: 4 });
    const far = mnemonic.pubkeyAt?.(6) ?? '';
    expect((await al.heartbeat('x', [far], proving([far]))).reported).toEqual([far]);
    expect(await store.getKey(far)).toMatchObject({ state: 'reported', pod: 'x' });
    const got = pubkeys(await al.allocate('y', 8));
    expect(got).not.toContain(far);
    // Index 6 was passed over and used up: y's keys are at 0..5 and 7..8.
    expect(await store.getKey(far)).toMatchObject({ state: 'reported', pod: 'x' });
    expect(store.nextKeyIndex()).toBe(9);
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('B7 restore: a key allocated in the backup but retired afterwards is not handed back in the hold, and the gate retires it after', async () => {
    const dir = await tempDir();
    const clock = new FakeClock();
    const beacon = await fakeBeacon();
    onCleanup(() => beacon.close());
    beacon.state.now = clock.now;
    let store = await Store.open(`${dir}/data`, { kek: testKek });
    let al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    const [k] = pubkeys(await al.allocate('a', 1));
    await store.close();
    await backupStore(`${dir}/data`, `${dir}/backup.jsonl`);
    store = await Store.open(`${dir}/data`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    await al.retire(k ?? '', 'slashed');
    beacon.state.validators.set(k ?? '', { index: '4', status: 'active_slashed', slashed: true });
    await store.close();
    await restoreStore(`${dir}/restored`, `${dir}/backup.jsonl`, (s) =>
      fenceRestored(s, clock.now()),
    );
    store = await Store.open(`${dir}/restored`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, {
      restored: true,
      liveness: new BeaconLivenessGate(beacon.url, NETWORKS.hoodi),
    });
    // 'a' is deleted and comes back (its kubelet confirms): not at once, a restore cannot vouch.
    await al.release('a', { stop: 'confirmed' });
    await expect(al.allocate('a', 1)).rejects.toMatchObject({ code: 'RESYNCING' });
    clock.advance(DELAY * 2);
    // After the hold, the key goes out only through the gate, which sees it slashed: retired.
    expect(pubkeys(await al.allocate('z', 1))).not.toContain(k);
    expect(await store.getKey(k ?? '')).toMatchObject({ state: 'retired' });
    await store.close();
  });

  it('B8 restore: a key the backup shows as a’s, which moved to c after it, is not handed back to a in the hold; c’s heartbeat makes it a conflict', async () => {
    const dir = await tempDir();
    const clock = new FakeClock();
    let store = await Store.open(`${dir}/data`, { kek: testKek });
    let al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    const [k] = pubkeys(await al.allocate('a', 1));
    await store.close();
    await backupStore(`${dir}/data`, `${dir}/backup.jsonl`);
    store = await Store.open(`${dir}/data`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, { lookahead: 4 });
    await al.release('a', { stop: 'confirmed' });
    clock.advance(DELAY);
    const c = pubkeys(await al.allocate('c', 1));
    expect(c).toEqual([k]); // c runs k now
    await store.close();
    await restoreStore(`${dir}/restored`, `${dir}/backup.jsonl`, (s) =>
      fenceRestored(s, clock.now()),
    );
    store = await Store.open(`${dir}/restored`, { kek: testKek });
    al = allocatorOver(store, clock, randomKeySource, { restored: true });
    // right after the restore, before c's first heartbeat, a is restarted (kubelet confirms)
    await al.release('a', { stop: 'confirmed' });
    await expect(al.allocate('a', 1)).rejects.toMatchObject({ code: 'RESYNCING' });
    // c's heartbeat tells where k runs: two pods in the store's view, so a conflict.
    expect((await al.heartbeat('c', c, proving(c))).conflicts).toEqual(c);
    expect(pubkeys(await al.allocate('new-a', 1))).not.toContain(k);
    await store.close();
  });
});
