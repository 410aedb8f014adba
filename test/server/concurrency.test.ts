import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { type AllocationBody, http, startTestServer } from '../helpers.js';

describe('concurrent allocation over HTTP', () => {
  it('200 concurrent POSTs for 100 pods: no key in two pods, each pod exactly what it asked', async () => {
    const { url, store, clock } = await startTestServer({ reuseDelayMs: 0 });
    // Some free keys in the pool, so requests race for reused keys as well as new ones.
    await http(url, 'POST', '/v1/pods/seed/keys', { count: 40 });
    await http(url, 'DELETE', '/v1/pods/seed/keys');
    clock.advance(1);

    const pods = Array.from({ length: 100 }, (_, i) => `validator-${i}`);
    // Every pod asks twice, the two requests in flight at the same time, in a shuffled order.
    const requests = [...pods, ...pods].sort(() => Math.random() - 0.5);
    const answers = await Promise.all(
      requests.map((pod) =>
        http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count: 2 }),
      ),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);

    const byPod = new Map<string, string[]>();
    for (const a of answers) {
      const keys = a.body.keys.map((k) => k.pubkey);
      const seen = byPod.get(a.body.pod);
      if (seen) expect(keys).toEqual(seen);
      byPod.set(a.body.pod, keys);
    }
    const all = [...byPod.values()].flat();
    expect(byPod.size).toBe(100);
    expect(all).toHaveLength(200);
    expect(new Set(all).size).toBe(200);
    for (const [pod, keys] of byPod) expect(await store.getPod(pod)).toMatchObject({ keys });
    expect(store.storedCounts()).toMatchObject({ allocated: 200, free: 0, cooling: 0, pods: 100 });
    expect(store.storedCounts().allocated + store.storedCounts().cooling).toBe(200);
    const report = await checkStore(store);
    expect(report.problems).toEqual([]);
    expect(report.keys).toBe(200);
  });
});
