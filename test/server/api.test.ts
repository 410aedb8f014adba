import { describe, expect, it } from 'vitest';
import { fillAllocatedPods } from '../../bench/fill.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import {
  type AllocationBody,
  type AssignmentsBody,
  http,
  MINUTE,
  openTempStore,
  startTestServer,
} from '../helpers.js';

const hexToBytes = (hex: string) => Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));

describe('HTTP API', () => {
  it('allocates over POST: 200 with keys whose secrets give their pubkeys, never cached', async () => {
    const { url } = await startTestServer();
    const res = await http<AllocationBody>(url, 'POST', '/v1/pods/validator-0/keys', { count: 2 });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body.pod).toBe('validator-0');
    expect(res.body.keys).toHaveLength(2);
    for (const k of res.body.keys) {
      expect(k.secretKey).toMatch(/^0x[0-9a-f]{64}$/);
      expect(publicKeyOf(hexToBytes(k.secretKey))).toBe(k.pubkey);
    }
  });

  it('reads a pod, releases it, and shows it in /v1/assignments', async () => {
    const { url } = await startTestServer();
    const alloc = await http<AllocationBody>(url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    const pubkeys = alloc.body.keys.map((k) => k.pubkey);
    await http(url, 'POST', '/v1/pods/validator-1/keys', { count: 1 });

    expect((await http(url, 'GET', '/v1/pods/validator-0/keys')).body).toEqual({
      pod: 'validator-0',
      pubkeys,
    });
    const before = await http<AssignmentsBody>(url, 'GET', '/v1/assignments');
    expect(before.body.pods['validator-0']).toEqual(pubkeys);
    expect(before.body.counts).toMatchObject({
      allocated: 3,
      free: 0,
      cooling: 0,
      retired: 0,
      total: 3,
      pods: 2,
    });

    const released = await http(url, 'DELETE', '/v1/pods/validator-0/keys');
    expect(released.body).toEqual({ pod: 'validator-0', released: pubkeys });
    const after = await http<AssignmentsBody>(url, 'GET', '/v1/assignments');
    expect(Object.keys(after.body.pods)).toEqual(['validator-1']);
    expect(after.body.counts).toMatchObject({ allocated: 1, cooling: 2, pods: 1 });
  });

  it('lists a pod that grew or left as it is now, across many chunks', async () => {
    const store = await openTempStore();
    // 400 pods of 4 keys: about 170 kB of JSON, sent in several chunks.
    await fillAllocatedPods(store, 400, 4);
    const { url } = await startTestServer({ store });
    const stored = new Map<string, readonly string[]>();
    for await (const [name, pod] of store.pods()) stored.set(name, pod.keys);

    const first = await http<AssignmentsBody>(url, 'GET', '/v1/assignments');
    expect(first.body.pods).toEqual(Object.fromEntries(stored));
    expect(Object.keys(first.body.pods)).toHaveLength(400);

    // A listing serializes a pod's keys once and keeps the text: a pod that grows gets its new
    // keys listed, one that leaves is gone, and a new one shows.
    const held = stored.get('validator-00007') ?? [];
    const grown = await http<AllocationBody>(url, 'POST', '/v1/pods/validator-00007/keys', {
      count: held.length + 1,
    });
    expect(grown.status).toBe(200);
    await http(url, 'DELETE', '/v1/pods/validator-00300/keys');
    const added = await http<AllocationBody>(url, 'POST', '/v1/pods/zz-new/keys', { count: 1 });
    const after = await http<AssignmentsBody>(url, 'GET', '/v1/assignments');
    expect(after.body.pods['validator-00007']).toEqual(grown.body.keys.map((k) => k.pubkey));
    expect(after.body.pods['validator-00007']).toHaveLength(5);
    expect(after.body.pods['validator-00300']).toBeUndefined();
    expect(after.body.pods['zz-new']).toEqual(added.body.keys.map((k) => k.pubkey));
    expect(Object.keys(after.body.pods)).toHaveLength(400);
    expect(after.body.pods['validator-00008']).toEqual(stored.get('validator-00008'));
  });

  it('counts a cooled key as free once the reuse delay has passed', async () => {
    const { url, clock } = await startTestServer({ reuseDelayMs: 10 * MINUTE });
    await http(url, 'POST', '/v1/pods/a/keys', { count: 2 });
    await http(url, 'DELETE', '/v1/pods/a/keys');
    clock.advance(10 * MINUTE);
    const res = await http<AssignmentsBody>(url, 'GET', '/v1/assignments');
    expect(res.body.counts).toMatchObject({ free: 2, cooling: 0 });
  });

  it('answers 409 COUNT_MISMATCH for fewer keys than held, and 503 POOL_EXHAUSTED with Retry-After', async () => {
    const { url } = await startTestServer({ maxTotalKeys: 2 });
    await http(url, 'POST', '/v1/pods/a/keys', { count: 2 });
    const fewer = await http(url, 'POST', '/v1/pods/a/keys', { count: 1 });
    expect(fewer.status).toBe(409);
    expect(fewer.body.error.code).toBe('COUNT_MISMATCH');
    await http(url, 'DELETE', '/v1/pods/a/keys');
    const exhausted = await http(url, 'POST', '/v1/pods/b/keys', { count: 1 });
    expect(exhausted.status).toBe(503);
    expect(exhausted.body.error.code).toBe('POOL_EXHAUSTED');
    expect(exhausted.headers.get('retry-after')).toBe(String(20 * 60));
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    const { url } = await startTestServer();
    expect((await http(url, 'GET', '/healthz')).status).toBe(200);
    expect((await http(url, 'GET', '/readyz')).body).toEqual({ status: 'ready' });
    await http(url, 'POST', '/v1/pods/a/keys', { count: 3 });
    await http(url, 'DELETE', '/v1/pods/a/keys');
    await http(url, 'POST', '/v1/pods/b/keys', { count: 1 });
    const metrics = (await http<string>(url, 'GET', '/metrics')).body;
    expect(metrics).toMatch(/^pkm_keys\{state="cooling"\} 3$/m);
    expect(metrics).toMatch(/^pkm_keys\{state="allocated"\} 1$/m);
    expect(metrics).toMatch(/^pkm_pods 1$/m);
    expect(metrics).toMatch(/^pkm_allocations_total 2$/m);
    expect(metrics).toMatch(/^pkm_releases_total 1$/m);
    expect(metrics).toMatch(/^pkm_keys_handed_out_total\{source="created"\} 4$/m);
    expect(metrics).toMatch(
      /pkm_http_request_duration_seconds_count\{method="POST",route="\/v1\/pods\/:pod\/keys",status="200"\} 2/,
    );
  });

  it('turns not ready once the store is closed', async () => {
    const { url, store } = await startTestServer();
    await store.close();
    const res = await http(url, 'GET', '/readyz');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('NOT_READY');
  });
});
