import { describe, expect, it } from 'vitest';
import {
  BeaconLivenessGate,
  type GateNetwork,
  type GateOptions,
  type ValidatorView,
} from '../../src/beacon/liveness.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { PkmError } from '../../src/errors.js';
import { MnemonicKeys } from '../../src/keys/bip39.js';
import { mnemonicKeySource } from '../../src/keys/source.js';
import { type AllocationBody, FakeClock, http, MINUTE, startTestServer } from '../helpers.js';
import { closedPort, type FakeBeacon, fakeBeacon, fakePubkey } from './fake-beacon.js';

const HOODI = NETWORKS.hoodi;
const HOODI_GENESIS = HOODI.genesisTime ?? 0;

function epochAt(ms: number): number {
  return Math.floor(Math.floor((ms / 1000 - HOODI_GENESIS) / 12) / 32);
}

function gateOn(
  beacon: FakeBeacon | string,
  opts: GateOptions = {},
  network: GateNetwork = HOODI,
): BeaconLivenessGate {
  return new BeaconLivenessGate(typeof beacon === 'string' ? beacon : beacon.url, network, opts);
}

/** The error `promise` rejects with (the test fails if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<PkmError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`resolved with ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(PkmError);
  return outcome.error as PkmError;
}

/** Fails closed: a 503 BEACON_UNAVAILABLE with Retry-After, whose message matches. */
async function expectClosed(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await rejection(promise);
  expect([err.code, err.status, err.retryAfter]).toEqual(['BEACON_UNAVAILABLE', 503, 15]);
  expect(err.message).toMatch(message);
}

/** A node that knows validators 7 (live) and 8 (not live); `absent` is none. */
async function nodeWithTwo(init: Parameters<typeof fakeBeacon>[0] = {}) {
  const beacon = await fakeBeacon(init);
  const [live, quiet, absent] = [fakePubkey(), fakePubkey(), fakePubkey()];
  beacon.state.validators.set(live, { index: '7', status: 'active_ongoing', slashed: false });
  beacon.state.validators.set(quiet, { index: '8', status: 'active_ongoing', slashed: false });
  beacon.state.live.add('7');
  return { beacon, live, quiet, absent };
}

describe('the liveness gate against a beacon node speaking the standard API', () => {
  it('tells apart keys that are no validator, live, not live, pending and exiting', async () => {
    const { beacon, live, quiet, absent } = await nodeWithTwo();
    const pending = fakePubkey();
    const exiting = fakePubkey();
    beacon.state.validators.set(pending, { index: '9', status: 'pending_queued', slashed: false });
    beacon.state.validators.set(exiting, { index: '10', status: 'active_exiting', slashed: false });
    beacon.state.live.add('10');
    const now = Date.now();
    const gate = gateOn(beacon);

    // Upper case is the same key (pubkeys are case-insensitive hex); each key comes back as given.
    const upper = `0x${quiet.slice(2).toUpperCase()}`;
    const views = await gate.statuses([live, upper, absent, pending, exiting], now);
    expect(Object.fromEntries(views)).toEqual({
      [live]: { kind: 'live', index: '7', status: 'active_ongoing', slashed: false, live: true },
      [upper]: {
        kind: 'not-live',
        index: '8',
        status: 'active_ongoing',
        slashed: false,
        live: false,
      },
      [absent]: { kind: 'absent' },
      [pending]: {
        kind: 'not-live',
        index: '9',
        status: 'pending_queued',
        slashed: false,
        live: false,
      },
      [exiting]: {
        kind: 'live',
        index: '10',
        status: 'active_exiting',
        slashed: false,
        live: true,
      },
    } satisfies Record<string, ValidatorView>);
    const epoch = epochAt(now);
    expect(beacon.calls).toEqual([
      'GET /eth/v1/beacon/genesis',
      'GET /eth/v1/config/spec',
      'GET /eth/v1/node/syncing',
      'POST /eth/v1/beacon/states/head/validators',
      `POST /eth/v1/validator/liveness/${epoch}`,
      `POST /eth/v1/validator/liveness/${epoch - 1}`,
    ]);
    expect(await gate.live([live, quiet, absent], now)).toEqual([live]);
  });

  it.each([
    ['active_slashed', false],
    ['exited_unslashed', false],
    ['exited_slashed', true],
    ['withdrawal_possible', false],
    ['withdrawal_done', false],
    ['active_ongoing', true], // slashed, its exit not yet processed
  ])('a validator %s (slashed: %s) is ended, whatever its liveness', async (status, slashed) => {
    const beacon = await fakeBeacon();
    const [seenLive, quiet] = [fakePubkey(), fakePubkey()];
    beacon.state.validators.set(seenLive, { index: '3', status, slashed });
    beacon.state.validators.set(quiet, { index: '4', status, slashed });
    beacon.state.live.add('3');
    const views = await gateOn(beacon).statuses([seenLive, quiet], Date.now());
    expect(views.get(seenLive)).toEqual({ kind: 'ended', index: '3', status, slashed, live: true });
    expect(views.get(quiet)).toEqual({ kind: 'ended', index: '4', status, slashed, live: false });
  });

  it.each(['/beacon/', '/beacon'])(
    'keeps the path of --beacon-url (ending in %j)',
    async (suffix) => {
      const { beacon, live, quiet } = await nodeWithTwo({ prefix: '/beacon' });
      const gate = gateOn(`${beacon.url}${suffix}`);
      expect(gate.url).toBe(`${beacon.url}/beacon`);
      expect(await gate.live([live, quiet], Date.now())).toEqual([live]);
      expect(beacon.calls.length).toBeGreaterThan(0);
      for (const call of beacon.calls) expect(call).toMatch(/^(GET|POST) \/beacon\/eth\/v1\//);
    },
  );

  it('sends credentials in --beacon-url as Basic auth, and never shows them', async () => {
    const { beacon, live } = await nodeWithTwo();
    const gate = gateOn(beacon.url.replace('//', '//pkm:s%40cret@'));
    expect(gate.url).toBe(beacon.url);
    expect(await gate.live([live], Date.now())).toEqual([live]);
    const basic = `Basic ${Buffer.from('pkm:s@cret').toString('base64')}`;
    expect(beacon.authorizations.length).toBeGreaterThan(0);
    for (const a of beacon.authorizations) expect(a).toBe(basic);
    beacon.state.syncing.is_syncing = true;
    const err = await rejection(
      gateOn(beacon.url.replace('//', '//pkm:s%40cret@')).live([live], Date.now()),
    );
    expect(err.message).toContain(beacon.url);
    expect(err.message).not.toMatch(/cret/);
  });

  it('fails closed when --beacon-url leaves out the path the node is served under', async () => {
    const { beacon, live } = await nodeWithTwo({ prefix: '/beacon' });
    await expectClosed(
      gateOn(beacon).live([live], Date.now()),
      /answered 404 for \/eth\/v1\/beacon\/genesis \(.*no such route: is the path of --beacon-url right/,
    );
  });

  it.each<[string, (b: FakeBeacon) => void, RegExp]>([
    [
      '404 from the liveness call',
      (b) => (b.state.livenessStatus = 404),
      /answered 404 .*liveness/,
    ],
    [
      'a node without the liveness route',
      (b) => b.state.missing.add('liveness'),
      /answered 404 for \/eth\/v1\/validator\/liveness\/\d+ \(no such route/,
    ],
    ['500 from the liveness call', (b) => (b.state.livenessStatus = 500), /answered 500/],
    ['503 (syncing) from the liveness call', (b) => (b.state.livenessStatus = 503), /syncing/],
    [
      'a node without any validators route',
      (b) => {
        b.state.missing.add('postValidators');
        b.state.missing.add('getValidators');
      },
      /answered 404 for \/eth\/v1\/beacon\/states\/head\/validators/,
    ],
  ])('fails closed on %s, never saying "not live"', async (_, breakIt, message) => {
    const { beacon, live, quiet } = await nodeWithTwo();
    breakIt(beacon);
    const gate = gateOn(beacon);
    await expectClosed(gate.live([live, quiet], Date.now()), message);
    await expectClosed(gate.statuses([quiet], Date.now()), message);
  });

  it.each<[string, (b: FakeBeacon) => void, RegExp]>([
    ['syncing', (b) => (b.state.syncing.is_syncing = true), /is syncing \(\d+ slots behind\)/],
    ['optimistic', (b) => (b.state.syncing.is_optimistic = true), /is optimistic/],
    [
      'without its execution client',
      (b) => (b.state.syncing.el_offline = true),
      /without its execution client \(el_offline\)/,
    ],
    [
      'synced by its word, its head 3 epochs behind the clock',
      (b) => (b.state.headSlot = Math.floor((Date.now() / 1000 - HOODI_GENESIS) / 12) - 96),
      /says it is synced, but its head .* 9\d slots behind/,
    ],
    [
      'ahead of our clock',
      (b) => (b.state.headSlot = Math.floor((Date.now() / 1000 - HOODI_GENESIS) / 12) + 10),
      /ahead of this server's clock/,
    ],
    [
      'without the syncing route',
      (b) => b.state.missing.add('syncing'),
      /answered 404 for \/eth\/v1\/node\/syncing/,
    ],
  ])(
    'fails closed when the node is %s, before it asks about any validator',
    async (_, breakIt, message) => {
      const { beacon, live, quiet } = await nodeWithTwo();
      breakIt(beacon);
      await expectClosed(gateOn(beacon).live([live, quiet], Date.now()), message);
      expect(beacon.validatorIds).toEqual([]);
    },
  );

  it('fails closed when nothing listens at --beacon-url (a closed port)', async () => {
    const gate = gateOn(`http://127.0.0.1:${await closedPort()}`, { timeoutMs: 2_000 });
    await expectClosed(
      gate.live([fakePubkey()], Date.now()),
      /does not answer GET \/eth\/v1\/beacon\/genesis: .*ECONNREFUSED/,
    );
  });

  it.each<[string, (b: FakeBeacon) => void, RegExp]>([
    [
      'genesis_validators_root',
      (b) => (b.state.genesis.genesis_validators_root = `0x${'ab'.repeat(32)}`),
      /follows another network than --network hoodi: genesis_validators_root 0x(ab){32}, not 0x212f13fc/,
    ],
    [
      'genesis_fork_version',
      (b) => (b.state.genesis.genesis_fork_version = '0x00000000'),
      /genesis_fork_version 0x00000000, not 0x10000910/,
    ],
  ])(
    'a node of another network (%s): the gate fails closed; start refuses',
    async (_, breakIt, message) => {
      const { beacon, live } = await nodeWithTwo();
      breakIt(beacon);
      const gate = gateOn(beacon);
      await expectClosed(gate.live([live], Date.now()), message);
      const refused = await rejection(gate.start(Date.now()));
      expect([refused.code, refused.exitCode]).toEqual(['INVALID_CONFIG', 2]);
      expect(refused.message).toMatch(message);
      expect(beacon.validatorIds).toEqual([]);
    },
  );

  it.each<[string, (b: FakeBeacon) => void, RegExp]>([
    [
      'leaves out an index asked',
      (b) => b.state.livenessOmits.add('8'),
      /answered liveness for epoch \d+ without validators 8$/,
    ],
    [
      'names an index not asked',
      (b) =>
        (b.state.livenessBody = {
          data: [
            { index: '7', is_live: true },
            { index: '8', is_live: false },
            { index: '99', is_live: false },
          ],
        }),
      /with validators not asked: 99/,
    ],
    [
      'has is_live as a string',
      (b) => (b.state.livenessBody = { data: [{ index: '7', is_live: 'true' }] }),
      /answered liveness in an unknown shape \(data\.0\.is_live/,
    ],
    [
      'is an empty object',
      (b) => (b.state.livenessBody = {}),
      /answered liveness in an unknown shape \(data/,
    ],
  ])('fails closed when the liveness answer %s', async (_, breakIt, message) => {
    const { beacon, live, quiet } = await nodeWithTwo();
    breakIt(beacon);
    await expectClosed(gateOn(beacon).statuses([live, quiet], Date.now()), message);
  });

  it('fails closed on a validator status it does not know', async () => {
    const { beacon, live } = await nodeWithTwo();
    const odd = fakePubkey();
    beacon.state.validators.set(odd, { index: '11', status: 'active_sleeping', slashed: false });
    await expectClosed(
      gateOn(beacon).statuses([live, odd], Date.now()),
      /answered validators in an unknown shape \(data\.\d\.status/,
    );
  });

  it('asks for validators by POST 256 at a time, and by GET 64 at a time where POST is missing', async () => {
    const beacon = await fakeBeacon();
    const keys = Array.from({ length: 300 }, fakePubkey);
    keys.forEach((pk, i) => {
      beacon.state.validators.set(pk, {
        index: String(i),
        status: 'active_ongoing',
        slashed: false,
      });
    });
    beacon.state.live.add('299');
    const now = Date.now();
    expect(await gateOn(beacon).live(keys, now)).toEqual([keys[299]]);
    expect(beacon.validatorIds.map((ids) => ids.length)).toEqual([256, 44]);
    const epoch = epochAt(now);
    expect(beacon.calls.filter((c) => c.includes('liveness'))).toEqual([
      `POST /eth/v1/validator/liveness/${epoch}`,
      `POST /eth/v1/validator/liveness/${epoch}`,
      `POST /eth/v1/validator/liveness/${epoch - 1}`,
      `POST /eth/v1/validator/liveness/${epoch - 1}`,
    ]);

    const old = await fakeBeacon({ validators: beacon.state.validators, live: beacon.state.live });
    old.state.missing.add('postValidators');
    const gate = gateOn(old);
    const some = keys.slice(0, 70);
    expect(await gate.live(some, now)).toEqual([]);
    expect(await gate.live(keys.slice(290), now)).toEqual([keys[299]]);
    const validatorCalls = old.calls.filter((c) => c.endsWith('/validators'));
    // One POST finds the route missing; from then on, GET only.
    expect(validatorCalls).toEqual([
      'POST /eth/v1/beacon/states/head/validators',
      'GET /eth/v1/beacon/states/head/validators',
      'GET /eth/v1/beacon/states/head/validators',
      'GET /eth/v1/beacon/states/head/validators',
    ]);
    expect(old.validatorIds.map((ids) => ids.length)).toEqual([64, 6, 10]);
  });

  it('checks the node again once its last check is 30 s old, and not before', async () => {
    const { beacon, live } = await nodeWithTwo();
    const clock = new FakeClock(Date.now());
    const gate = gateOn(beacon, { monotonic: clock.monotonic });
    expect(await gate.live([live], clock.ms)).toEqual([live]);
    beacon.state.syncing.is_syncing = true;
    clock.advance(29_000);
    expect(await gate.live([live], clock.ms)).toEqual([live]);
    expect(beacon.calls.filter((c) => c.endsWith('/syncing'))).toHaveLength(1);
    clock.advance(2_000);
    await expectClosed(gate.live([live], clock.ms), /is syncing/);
    // A failed check is not kept: the next use asks again, and the gate opens once it is fine.
    beacon.state.syncing.is_syncing = false;
    expect(await gate.live([live], clock.ms)).toEqual([live]);
    expect(beacon.calls.filter((c) => c.endsWith('/syncing'))).toHaveLength(3);
  });

  it('start says whether the gate is open, and why not', async () => {
    const good = await nodeWithTwo();
    expect(await gateOn(good.beacon).start(Date.now())).toEqual({ ready: true });
    expect(good.beacon.calls).toContain(`POST /eth/v1/validator/liveness/${epochAt(Date.now())}`);

    const syncing = await fakeBeacon();
    syncing.state.syncing.is_syncing = true;
    expect(await gateOn(syncing).start(Date.now())).toEqual({
      ready: false,
      reason: expect.stringMatching(/is syncing/),
    });

    const noLiveness = await fakeBeacon();
    noLiveness.state.missing.add('liveness');
    expect(await gateOn(noLiveness).start(Date.now())).toEqual({
      ready: false,
      reason: expect.stringMatching(/404 for \/eth\/v1\/validator\/liveness/),
    });

    const unreachable = gateOn(`http://127.0.0.1:${await closedPort()}`, { timeoutMs: 2_000 });
    expect(await unreachable.start(Date.now())).toEqual({
      ready: false,
      reason: expect.stringMatching(/does not answer/),
    });
  });

  it('on a custom network, checks the fork version and takes the slot clock from the node', async () => {
    const genesis = Math.floor(Date.now() / 1000) - 1_000;
    const custom: GateNetwork = { name: 'custom', forkVersion: '0x10000038' };
    const node = () =>
      fakeBeacon({
        genesis: {
          genesis_time: String(genesis),
          genesis_validators_root: `0x${'cd'.repeat(32)}`,
          genesis_fork_version: '0x10000038',
        },
        spec: { SECONDS_PER_SLOT: '6', SLOTS_PER_EPOCH: '8' },
      });
    const beacon = await node();
    const pk = fakePubkey();
    beacon.state.validators.set(pk, { index: '0', status: 'active_ongoing', slashed: false });
    const now = Date.now();
    const gate = gateOn(beacon, {}, custom);
    expect(await gate.start(now)).toEqual({ ready: true });
    expect(await gate.live([pk], now)).toEqual([]);
    const epoch = Math.floor(Math.floor((now / 1000 - genesis) / 6) / 8);
    expect(beacon.calls).toContain(`POST /eth/v1/validator/liveness/${epoch}`);
    expect(beacon.calls).toContain(`POST /eth/v1/validator/liveness/${epoch - 1}`);

    const other = await node();
    other.state.genesis.genesis_fork_version = '0x10000039';
    const refused = await rejection(gateOn(other, {}, custom).start(now));
    expect(refused.code).toBe('INVALID_CONFIG');
    expect(refused.message).toMatch(/genesis_fork_version 0x10000039, not 0x10000038/);
  });

  it('refuses a string that is not a pubkey, without asking the node', async () => {
    const beacon = await fakeBeacon();
    const err = await rejection(gateOn(beacon).statuses(['7'], Date.now()));
    expect(err.code).toBe('INVALID_PUBKEY');
    expect(beacon.calls).toEqual([]);
  });
});

describe('the liveness gate in the allocator (--beacon-url)', () => {
  it('keeps a cooled key seen live from another pod, and counts it for an alert', async () => {
    const beacon = await fakeBeacon();
    const { url, clock } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: gateOn(beacon),
    });
    beacon.state.now = clock.now;
    const old = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/old/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    const [liveKey, quietKey] = old;
    if (!liveKey || !quietKey) throw new Error('setup');
    beacon.state.validators.set(liveKey, { index: '7', status: 'active_ongoing', slashed: false });
    beacon.state.validators.set(quietKey, { index: '8', status: 'active_ongoing', slashed: false });
    beacon.state.live.add('7'); // the old pod may still be running it
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);

    const next = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/new/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    expect(next).toContain(quietKey);
    expect(next).not.toContain(liveKey);
    expect(beacon.calls).toContain(`POST /eth/v1/validator/liveness/${epochAt(clock.ms)}`);
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_liveness_held_back_total 1$/m,
    );

    // Once it is no longer live, it may move after the hold.
    beacon.state.live.delete('7');
    clock.advance(13 * MINUTE);
    const later = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/later/keys', { count: 1 })
    ).body.keys.map((k) => k.pubkey);
    expect(later).toEqual([liveKey]);
  });

  it.each<[string, (b: FakeBeacon) => unknown]>([
    ['does not answer', (b) => b.close()],
    ['answers 404 for liveness', (b) => (b.state.livenessStatus = 404)],
    ['is syncing', (b) => (b.state.syncing.is_syncing = true)],
  ])('fails closed when the beacon node %s: 503, nothing changed', async (_, breakIt) => {
    const beacon = await fakeBeacon();
    const { url, clock, store } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: gateOn(beacon, { timeoutMs: 1000 }),
    });
    beacon.state.now = clock.now;
    const [key] = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/old/keys', { count: 1 })
    ).body.keys.map((k) => k.pubkey);
    if (!key) throw new Error('setup');
    beacon.state.validators.set(key, { index: '5', status: 'active_ongoing', slashed: false });
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);
    await breakIt(beacon);
    const before = await store.rawEntries();
    const res = await http(url, 'POST', '/v1/pods/new/keys', { count: 1 });
    expect([res.status, res.body.error.code]).toEqual([503, 'BEACON_UNAVAILABLE']);
    expect(res.headers.get('retry-after')).toBe('15');
    expect(await store.rawEntries()).toEqual(before);
  });

  it('does not ask about keys that were never held, nor about a pod taking back its own', async () => {
    const beacon = await fakeBeacon();
    const { url } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: gateOn(beacon),
    });
    await http(url, 'POST', '/v1/pods/a/keys', { count: 1 });
    await http(url, 'DELETE', '/v1/pods/a/keys');
    expect((await http(url, 'POST', '/v1/pods/a/keys', { count: 1 })).status).toBe(200);
    expect(beacon.calls).toEqual([]);
  });

  it('retires a cooled key whose validator is slashed or exited, instead of handing it out', async () => {
    const beacon = await fakeBeacon();
    const { url, clock, store } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: gateOn(beacon),
    });
    beacon.state.now = clock.now;
    const old = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/old/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    const [slashed, exited] = old;
    if (!slashed || !exited) throw new Error('setup');
    beacon.state.validators.set(slashed, { index: '3', status: 'active_slashed', slashed: true });
    beacon.state.validators.set(exited, { index: '4', status: 'exited_unslashed', slashed: false });
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);
    const next = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/new/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    expect(next.filter((k) => old.includes(k))).toEqual([]);
    expect(await store.getKey(slashed)).toMatchObject({ state: 'retired' });
    expect(await store.getKey(exited)).toMatchObject({ state: 'retired' });
  });

  it('skips a derivation index whose key is a validator already, and records the index as used', async () => {
    const beacon = await fakeBeacon();
    const source = mnemonicKeySource(
      new MnemonicKeys(
        'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about',
      ),
    );
    const { url, clock, store } = await startTestServer({
      liveness: gateOn(beacon),
      keySource: source,
    });
    beacon.state.now = clock.now;
    const taken = source.pubkeyAt?.(0);
    if (taken === undefined) throw new Error('a mnemonic source derives public keys');
    beacon.state.validators.set(taken, { index: '11', status: 'active_ongoing', slashed: false });
    const res = await http<AllocationBody>(url, 'POST', '/v1/pods/a/keys', { count: 2 });
    expect(res.body.keys.map((k) => k.path)).toEqual(['m/12381/3600/1/0/0', 'm/12381/3600/2/0/0']);
    expect(store.nextKeyIndex()).toBe(3);
    const events = await store.events(0, 100);
    expect(events.find((e) => e.type === 'skip')?.detail).toMatch(/indexes 0 are validators/);
  });
});
