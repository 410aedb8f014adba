import { describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { checkStore } from '../../src/store/check.js';
import { type AssignmentsBody, http, MINUTE, startTestServer } from '../helpers.js';
import { allocate, allocateKeys, beat, provenBeat } from '../support/heartbeats.js';

const counts = async (url: string) =>
  (await http<AssignmentsBody & { counts: Record<string, number> }>(url, 'GET', '/v1/assignments'))
    .body.counts;

describe('heartbeats', () => {
  it('answer with the boot token, and change nothing for keys the pod holds', async () => {
    const { url, store } = await startTestServer();
    const keys = await allocate(url, 'a', 2);
    const before = await store.rawEntries();
    const res = await beat(url, 'a', keys);
    expect(res.body).toEqual({
      pod: 'a',
      bootToken: expect.stringMatching(/^[0-9a-f]{32}$/),
      reclaimed: [],
      conflicts: [],
      unknown: [],
      reported: [],
      stillCooling: [],
      refused: [],
    });
    expect(await store.rawEntries()).toEqual(before);
    expect(await (await fetch(`${url}/assignments`)).text()).toMatch(
      /<td class="beat"><time datetime=/,
    );
  });

  it('a proven claim on a free key makes it the reporter’s: no other pod gets it', async () => {
    const { url, store, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const held = await allocateKeys(url, 'a', 2);
    const keys = held.map((k) => k.pubkey);
    await http(url, 'DELETE', '/v1/pods/a/keys'); // the store thinks they cool...
    clock.advance(MINUTE); // ...and are free by now
    const res = await provenBeat(url, 'b', held); // but pod b runs them (a restored, older view)
    expect([...res.body.reclaimed].sort()).toEqual([...keys].sort());
    expect(res.body.reported).toEqual([]);
    expect(await allocate(url, 'c', 2)).not.toContain(keys[0]);
    expect((await allocate(url, 'b', 2)).sort()).toEqual([...keys].sort());
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('a pod reporting its own cooling key whose stop is not confirmed keeps it from everyone while it reports it', async () => {
    const { url, allocator, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const keys = await allocate(url, 'a', 1);
    await allocator.release('a', { stop: 'forced' }); // kubectl delete --force
    // The old container still runs and beats; the new pod of that name asks for a key.
    clock.advance(MINUTE - 1);
    expect((await beat(url, 'a', keys)).body.stillCooling).toEqual(keys);
    expect(await allocate(url, 'a', 1)).not.toEqual(keys);
    clock.advance(MINUTE - 1); // a full delay since the release, but not since the last beat
    expect(await allocate(url, 'c', 1)).not.toEqual(keys);
    clock.advance(1);
    expect(await allocate(url, 'd', 1)).toEqual(keys);
  });

  it('flag a key two pods run as a conflict: off both pods, never handed out, counted; retiring resolves it', async () => {
    const { url, store } = await startTestServer();
    const [held] = await allocateKeys(url, 'a', 1);
    if (!held) throw new Error('setup');
    const key = held.pubkey;
    const lost = randomKey(); // a key the store never had
    const res = await provenBeat(url, 'b', [held, lost]);
    // A key the store never had is recorded as b's (reported), never handed out.
    expect(res.body).toMatchObject({
      conflicts: [key],
      unknown: [],
      reported: [lost.pubkey],
      refused: [],
    });
    expect(await counts(url)).toMatchObject({ conflict: 1, allocated: 0, reported: 1 });
    expect(await (await fetch(`${url}/assignments`)).text()).toMatch(/data-state="conflict">1</);
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(/^pkm_conflicts_total 1$/m);
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_keys\{state="conflict"\} 1$/m,
    );
    expect(await allocate(url, 'c', 1)).not.toContain(key);
    expect(
      (await http(url, 'POST', `/v1/keys/${key}/retire`, { reason: 'ran in a and b' })).status,
    ).toBe(200);
    expect(await counts(url)).toMatchObject({ conflict: 0, retired: 1 });
    // The reported key, known by its pubkey alone, is retired too, and a second pod that reports
    // it makes it a conflict first.
    expect((await provenBeat(url, 'c', [lost])).body.conflicts).toEqual([lost.pubkey]);
    const retired = await http(url, 'POST', `/v1/keys/${lost.pubkey}/retire`, {});
    expect(retired.status).toBe(200);
    expect(await counts(url)).toMatchObject({ conflict: 0, retired: 2, reported: 0 });
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('in the resync window after a start, no key held before goes to another pod', async () => {
    const { url, clock } = await startTestServer({ reuseDelayMs: 0, resyncWindowMs: MINUTE });
    const [key] = await allocate(url, 'a', 1);
    await http(url, 'DELETE', '/v1/pods/a/keys');
    expect(await allocate(url, 'b', 1)).not.toContain(key);
    expect(await allocate(url, 'a', 1)).toEqual([key]); // its own pod may take it back
    await http(url, 'DELETE', '/v1/pods/a/keys');
    clock.advance(MINUTE);
    expect(await allocate(url, 'c', 1)).toEqual([key]);
  });

  it('refuse a malformed heartbeat with 400 and change nothing', async () => {
    const { url, store } = await startTestServer();
    await allocate(url, 'a', 1);
    const before = await store.rawEntries();
    for (const body of [{}, { pubkeys: ['0x12'] }, { pubkeys: [], extra: 1 }]) {
      expect((await http(url, 'POST', '/v1/pods/a/heartbeat', body)).status).toBe(400);
    }
    expect(await store.rawEntries()).toEqual(before);
  });
});
