// Found by an adversarial review (issue 14 point 4): DELETE /eth/v1/keystores answers `deleted` for keys pkm itself
// would not hand to a new pod right now. `deleted` tells the caller it may start the key
// elsewhere (keymanager-delete.ts header), so each is a key possibly live in two places.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKey } from '../../src/keys/bls.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import { createLogger } from '../../src/log.js';
import { Auth } from '../../src/server/auth.js';
import { composeApp } from '../../src/server/root.js';
import {
  type AllocationBody,
  FakeClock,
  http,
  MINUTE,
  onCleanup,
  openTempStore,
  startTestServer,
} from '../helpers.js';
import { loadKeymanagerSpec, problems } from '../support/keymanager-spec.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const ADMIN = 'a'.repeat(64);
const admin = { authorization: `Bearer ${ADMIN}` };
const ROOT = `0x${'ab'.repeat(32)}`;
const PATH = '/eth/v1/keystores';
interface Statuses {
  data: Array<{ status: string; message?: string }>;
  slashing_protection: string;
}

describe('break: DELETE answers deleted only where an allocation would hand the key out', () => {
  it('a free key a pod claims to run (claim refused, held back from every pod) is not deleted', async () => {
    const spec = await loadKeymanagerSpec();
    const s = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      beacon: { genesisTime: Date.UTC(2020, 11, 1) / 1000, genesisValidatorsRoot: ROOT },
    });
    // A key imported as never validated: free.
    const k = randomKey();
    const ks = await encryptKeystore(
      k.secretKey,
      'pw',
      { pubkey: k.pubkey, path: '' },
      'scrypt',
      CHEAP,
    );
    const imp = await http(
      s.url,
      'POST',
      '/v1/admin/keys/import',
      {
        keystores: [ks],
        passwords: ['pw'],
        neverValidated: true,
      },
      admin,
    );
    expect(imp.status).toBe(200);
    expect(await s.store.getKey(k.pubkey)).toMatchObject({ state: 'free' });

    // A pod reports running it (its proof of possession still on the way): refused, and the
    // key is held back from every pod (allocator.ts CLAIM_HOLD_MS).
    const hb = await http<{ refused: string[] }>(
      s.url,
      'POST',
      '/v1/pods/claimer/heartbeat',
      {
        pubkeys: [k.pubkey],
      },
      admin,
    );
    expect(hb.status).toBe(200);
    expect(hb.body.refused).toContain(k.pubkey);

    // pkm itself will not hand it out now: a new pod gets another key.
    const alloc = await http<AllocationBody>(
      s.url,
      'POST',
      '/v1/pods/other/keys',
      { count: 1 },
      admin,
    );
    expect(alloc.status).toBe(200);
    expect(alloc.body.keys.map((x) => x.pubkey)).not.toContain(k.pubkey);

    // ... yet DELETE answers `deleted` ("start it elsewhere"), while the claimer may run it.
    const del = await http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: [k.pubkey] }, admin);
    expect(problems(spec.answer(PATH, 'delete', del.status), del.body)).toEqual([]);
    expect(del.body.data[0]?.status).toBe('error');
  });

  it('in a restored store whose hold was extended by an unconfirmed deletion, a cooled key is not deleted', async () => {
    const spec = await loadKeymanagerSpec();
    const store = await openTempStore();
    const clock = new FakeClock();
    const group = GroupCommitter.of(store);
    const R = 20 * MINUTE;
    const beacon = { genesisTime: Date.UTC(2020, 11, 1) / 1000, genesisValidatorsRoot: ROOT };
    const compose = (restored: boolean) => {
      const c = composeApp({
        store,
        group,
        clock: clock.now,
        monotonic: clock.monotonic,
        log: createLogger('silent'),
        beacon,
        auth: new Auth({ adminTokens: [ADMIN] }),
        ...(restored ? { restored: true } : {}),
        config: {
          reuseDelayMs: R,
          maxKeysPerPod: 64,
          maxTotalKeys: undefined,
          namespaces: [],
          resyncWindowMs: 0,
        },
      });
      onCleanup(() => c.proofs.close());
      return c;
    };
    // Before the backup: pod A ran K and released it; K cooled long ago.
    const before = compose(false);
    const [k] = (await before.allocator.allocate('a', 1)).keys.map((x) => x.pubkey);
    await before.allocator.release('a', { stop: 'confirmed' });
    clock.advance(3 * R);

    // The store is restored (K may have gone to another pod after the backup).
    const after = compose(true);
    const server: Server = createServer(after.listener);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    onCleanup(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // Late in the restore's hold, pod B is deleted without a confirmed stop: B may run a key the
    // restored store does not know it got (K), for a reuse delay from now; the hold is extended.
    clock.advance(R - MINUTE);
    await after.allocator.release('b', { stop: 'unconfirmed' });
    clock.advance(2 * MINUTE);

    // pkm itself will not hand K to a new pod now (cooling.resyncing()).
    const c = await after.allocator.allocate('c', 1);
    expect(c.keys.map((x) => x.pubkey)).not.toContain(k);

    // ... yet DELETE answers `deleted` for it.
    const del = await http<Statuses>(url, 'DELETE', PATH, { pubkeys: [k] }, admin);
    expect(problems(spec.answer(PATH, 'delete', del.status), del.body)).toEqual([]);
    expect(del.body.data[0]?.status).toBe('error');
  });
  it('inside a resync window longer than the reuse delay, a key held before the start is not deleted', async () => {
    const store = await openTempStore();
    const first = await startTestServer({
      store,
      auth: new Auth({ adminTokens: [ADMIN] }),
      beacon: { genesisTime: Date.UTC(2020, 11, 1) / 1000, genesisValidatorsRoot: ROOT },
    });
    const got = await http<AllocationBody>(
      first.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 1 },
      admin,
    );
    const k = got.body.keys[0]?.pubkey ?? '';
    await http(first.url, 'DELETE', '/v1/pods/a/keys', undefined, admin);
    // A restart with --resync-window 60m (reuse delay 20m); 21 minutes later.
    const s = await startTestServer({
      store,
      resyncWindowMs: 60 * MINUTE,
      auth: new Auth({ adminTokens: [ADMIN] }),
      beacon: { genesisTime: Date.UTC(2020, 11, 1) / 1000, genesisValidatorsRoot: ROOT },
    });
    s.clock.advance(21 * MINUTE);
    const b = await http<AllocationBody>(s.url, 'POST', '/v1/pods/b/keys', { count: 1 }, admin);
    expect(b.body.keys.map((x) => x.pubkey)).not.toContain(k);
    const del = await http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: [k] }, admin);
    expect(del.body.data[0]?.status).toBe('error');
  });
});
