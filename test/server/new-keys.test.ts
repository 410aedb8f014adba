// --new-keys never over real HTTP and a real LevelDB: the pool grows only by imports. An
// allocation the pool cannot fill is 503 POOL_EXHAUSTED naming the import routes, with a
// Retry-After, and changes nothing (never a partial allocation); free, cooled and a pod's own
// cooling keys are still handed out.
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import {
  type AllocationBody,
  type ErrorBody,
  http,
  MINUTE,
  openTempStore,
  startTestServer,
} from '../helpers.js';
import { mnemonic } from '../support/allocator.js';
import { seedKeys } from '../support/seed.js';

const keysOf = (pod: string) => `/v1/pods/${pod}/keys`;

interface PoolStatus {
  readonly pool: {
    readonly free: number;
    readonly cooling: number;
    readonly canCreate: boolean;
    readonly newKeys: string;
    readonly healthy: boolean;
  };
}

/** Asks for keys and expects the refusal, the store byte for byte as it was. */
async function refused(url: string, store: Store, pod: string, count: number) {
  const before = await store.rawEntries();
  const nextIndex = store.nextKeyIndex();
  const res = await http<ErrorBody>(url, 'POST', keysOf(pod), { count });
  expect(res.status).toBe(503);
  expect(res.body.error.code).toBe('POOL_EXHAUSTED');
  expect(res.body.error.message).toMatch(/--new-keys never/);
  expect(res.body.error.message).toMatch(/pkm keys import or POST \/eth\/v1\/keystores/);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await store.rawEntries()).toEqual(before);
  expect(store.nextKeyIndex()).toBe(nextIndex);
  return res.body.error.message;
}

describe('--new-keys never', () => {
  it('refuses an empty pool, random or mnemonic, and generates nothing', async () => {
    for (const keySource of [undefined, mnemonic]) {
      const { url, store } = await startTestServer({
        newKeys: 'never',
        ...(keySource ? { keySource } : {}),
      });
      const message = await refused(url, store, 'validator-0', 2);
      expect(message).toMatch(/asked for 2 keys \(holds 0\).* can give it 0 of the 2/);
      expect(message).toMatch(/the pool has 0 free keys, 0 cooling/);
      expect(store.storedCounts()).toMatchObject({ free: 0, allocated: 0 });
    }
  });

  it('serves free keys, and refuses a request for more than the pool holds without taking any', async () => {
    const store = await openTempStore();
    const seeded = await seedKeys(store, 3);
    const { url } = await startTestServer({ store, newKeys: 'never' });

    const message = await refused(url, store, 'a', 4);
    expect(message).toMatch(/can give it 3 of the 4 .*the pool has 3 free keys/);

    const two = await http<AllocationBody>(url, 'POST', keysOf('a'), { count: 2 });
    expect(two.status).toBe(200);
    for (const k of two.body.keys) expect(seeded.has(k.pubkey)).toBe(true);
    // A top-up obeys the same rule: 2 held + 1 free cannot make 4.
    const topUp = await refused(url, store, 'a', 4);
    expect(topUp).toMatch(/asked for 4 keys \(holds 2\).* can give it 1 of the 2/);
    const three = await http<AllocationBody>(url, 'POST', keysOf('a'), { count: 3 });
    expect(three.status).toBe(200);
    expect(three.body.keys.map((k) => k.pubkey).slice(0, 2)).toEqual(
      two.body.keys.map((k) => k.pubkey),
    );
    expect(store.storedCounts()).toMatchObject({ free: 0, allocated: 3 });
    // The same pod asking again for what it holds needs nothing new.
    expect((await http(url, 'POST', keysOf('a'), { count: 3 })).status).toBe(200);
    await refused(url, store, 'b', 1);
  });

  it('gives a pod its own cooling keys back, and cooled keys to another pod after the reuse delay', async () => {
    const store = await openTempStore();
    await seedKeys(store, 2);
    const { url, clock } = await startTestServer({ store, newKeys: 'never' });
    const first = await http<AllocationBody>(url, 'POST', keysOf('a'), { count: 2 });
    const held = first.body.keys.map((k) => k.pubkey);
    expect((await http(url, 'DELETE', keysOf('a'))).status).toBe(200);

    // Cooling: nobody else yet, and the refusal says when one frees up.
    const before = await store.rawEntries();
    const other = await http<ErrorBody>(url, 'POST', keysOf('b'), { count: 1 });
    expect(other.status).toBe(503);
    expect(other.body.error.message).toMatch(/0 free keys, 2 cooling/);
    expect(Number(other.headers.get('retry-after'))).toBe(20 * 60);
    expect(await store.rawEntries()).toEqual(before);

    const back = await http<AllocationBody>(url, 'POST', keysOf('a'), { count: 2 });
    expect(back.status).toBe(200);
    expect(back.body.keys.map((k) => k.pubkey).sort()).toEqual([...held].sort());
    expect((await http(url, 'DELETE', keysOf('a'))).status).toBe(200);

    clock.advance(20 * MINUTE);
    const moved = await http<AllocationBody>(url, 'POST', keysOf('b'), { count: 2 });
    expect(moved.status).toBe(200);
    expect(moved.body.keys.map((k) => k.pubkey).sort()).toEqual([...held].sort());
    expect(store.storedCounts()).toMatchObject({ allocated: 2, free: 0, cooling: 0 });
  });

  it('pods racing for the last free keys: each gets all it asked for or nothing, no key twice', async () => {
    const store = await openTempStore();
    await seedKeys(store, 5);
    const { url } = await startTestServer({ store, newKeys: 'never' });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        http<AllocationBody>(url, 'POST', keysOf(`p-${i}`), { count: 2 }),
      ),
    );
    const served = answers.filter((a) => a.status === 200);
    expect(served).toHaveLength(2);
    expect(answers.filter((a) => a.status === 503)).toHaveLength(10);
    const handed = served.flatMap((a) => a.body.keys.map((k) => k.pubkey));
    expect(new Set(handed).size).toBe(4);
    expect(store.storedCounts()).toMatchObject({ free: 1, allocated: 4, pods: 2 });
  });

  it('shows the policy on /v1/status, so an operator sees why allocations fail', async () => {
    const never = await startTestServer({ newKeys: 'never' });
    const empty = await http<PoolStatus>(never.url, 'GET', '/v1/status');
    expect(empty.body.pool).toEqual({
      free: 0,
      cooling: 0,
      canCreate: false,
      newKeys: 'never',
      healthy: false,
    });
    await seedKeys(never.store, 1);
    const one = await http<PoolStatus>(never.url, 'GET', '/v1/status');
    expect(one.body.pool).toMatchObject({ free: 1, canCreate: false, healthy: true });

    const always = await startTestServer({});
    const status = await http<PoolStatus>(always.url, 'GET', '/v1/status');
    expect(status.body.pool).toMatchObject({ canCreate: true, newKeys: 'always', healthy: true });
  });

  it('always (the default) still makes new keys', async () => {
    const { url, store } = await startTestServer({});
    expect((await http(url, 'POST', keysOf('a'), { count: 2 })).status).toBe(200);
    expect(store.storedCounts().allocated).toBe(2);
  });
});
