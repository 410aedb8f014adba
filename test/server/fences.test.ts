// Who gets a deleted pod's keys, and when, by what the deletion proves (DESIGN.md "Safety
// rules"): a confirmed stop, a graceful deletion, or a forced one (kubernetes#73470).
import { describe, expect, it } from 'vitest';
import { BeaconLivenessGate } from '../../src/beacon/liveness.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { checkStore } from '../../src/store/check.js';
import {
  type AllocationBody,
  type AssignmentsBody,
  http,
  MINUTE,
  startTestServer,
} from '../helpers.js';
import { KUBELET, OPERATOR, podStatus, review } from '../support/review.js';

const POD = '/v1/namespaces/validators/pods/validator-0/keys';
const HOOK = '/v1/webhooks/pod-deletion';

async function keysOf(url: string, path: string, count = 2) {
  const res = await http<AllocationBody>(url, 'POST', path, { count });
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey).sort();
}
const counts = async (url: string) =>
  (await http<AssignmentsBody & { counts: Record<string, number> }>(url, 'GET', '/v1/assignments'))
    .body.counts;
const other = (n: number) => `/v1/namespaces/validators/pods/other-${n}/keys`;

describe('a deleted pod’s keys, by what the deletion proves', () => {
  it('forced (gracePeriodSeconds 0 from an operator): fenced, not even the same name gets them before the reuse delay', async () => {
    const { url, clock, store } = await startTestServer({ reuseDelayMs: 20 * MINUTE });
    const old = await keysOf(url, POD);
    const res = await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0 }));
    expect(res.status).toBe(200);
    expect(await counts(url)).toMatchObject({ cooling: 2, fenced: 2 });
    expect(await (await fetch(`${url}/assignments`)).text()).toMatch(/data-state="fenced">2</);
    const status = await http<{ fences: Array<{ pubkeys: string[] }> }>(url, 'GET', '/v1/status');
    expect(status.body.fences[0]?.pubkeys.sort()).toEqual(old);
    // The new v-0 (maybe beside the old one on a cut-off node) gets other keys.
    const fresh = await keysOf(url, POD);
    expect(fresh.some((k) => old.includes(k))).toBe(false);
    await http(url, 'DELETE', POD);
    clock.advance(20 * MINUTE - 1);
    expect((await keysOf(url, other(1))).some((k) => old.includes(k))).toBe(false);
    clock.advance(1);
    expect(await keysOf(url, other(2), 4)).toEqual(expect.arrayContaining(old));
    const metrics = (await http<string>(url, 'GET', '/metrics')).body;
    expect(metrics).toMatch(/^pkm_fenced_keys_total 2$/m);
    const events = (
      await http<{ events: Array<{ type: string; pubkeys: string[] }> }>(url, 'GET', '/v1/events')
    ).body.events;
    expect(events.find((e) => e.type === 'fence')?.pubkeys.sort()).toEqual(old);
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('confirmed (the kubelet’s own final DELETE): the same name gets its keys back at once', async () => {
    const { url } = await startTestServer();
    const old = await keysOf(url, POD);
    await http(url, 'POST', HOOK, review({ userInfo: KUBELET, grace: 0 }));
    expect(await counts(url)).toMatchObject({ cooling: 2, fenced: 0 });
    expect(await keysOf(url, POD)).toEqual(old);
  });

  it('graceful, then the kubelet confirms: the same name waits until the confirmation, then has them at once', async () => {
    const { url } = await startTestServer();
    const old = await keysOf(url, POD);
    await http(url, 'POST', HOOK, review({ grace: 30 }));
    expect(await counts(url)).toMatchObject({ cooling: 2, allocated: 0 });
    // Before the kubelet's word, a pod of the same name gets other keys.
    const meanwhile = await keysOf(url, other(1)); // another pod: nothing of v-0's either
    expect(meanwhile.some((k) => old.includes(k))).toBe(false);
    await http(
      url,
      'POST',
      HOOK,
      review({ userInfo: KUBELET, grace: 0, status: podStatus('terminated') }),
    );
    expect(await keysOf(url, POD)).toEqual(old);
  });

  it('graceful, then forced: the unconfirmed keys are fenced', async () => {
    const { url } = await startTestServer();
    await keysOf(url, POD);
    await http(url, 'POST', HOOK, review({ grace: 30 }));
    expect(await counts(url)).toMatchObject({ cooling: 2, fenced: 0 });
    await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0 }));
    expect(await counts(url)).toMatchObject({ cooling: 2, fenced: 2 });
  });

  it('a DELETE from a node that is not the pod’s own is forced, not a confirmation', async () => {
    const { url } = await startTestServer();
    await keysOf(url, POD);
    const stranger = { ...KUBELET, username: 'system:node:node-b' };
    await http(url, 'POST', HOOK, review({ userInfo: stranger, grace: 0 }));
    expect(await counts(url)).toMatchObject({ fenced: 2 });
  });

  it('an old object already being deleted whose containers all stopped confirms, whoever deletes it', async () => {
    const { url } = await startTestServer();
    const old = await keysOf(url, POD);
    await http(
      url,
      'POST',
      HOOK,
      review({ userInfo: OPERATOR, grace: 0, status: podStatus('terminated'), deleting: true }),
    );
    expect(await counts(url)).toMatchObject({ fenced: 0 });
    expect(await keysOf(url, POD)).toEqual(old);
  });

  it('a terminated container of a pod not being deleted proves nothing (restartPolicy Always restarts it): forced', async () => {
    const { url } = await startTestServer();
    const old = await keysOf(url, POD);
    await http(
      url,
      'POST',
      HOOK,
      review({ userInfo: OPERATOR, grace: 0, status: podStatus('terminated') }),
    );
    expect(await counts(url)).toMatchObject({ fenced: 2 });
    expect((await keysOf(url, POD)).some((k) => old.includes(k))).toBe(false);
  });

  it('fenced keys wait for the liveness gate too: an unreachable beacon node keeps them where they are', async () => {
    // A real gate, on a port nothing listens on: it cannot answer, so it must not say "not live".
    const gate = new BeaconLivenessGate('http://127.0.0.1:9', NETWORKS.mainnet, { timeoutMs: 500 });
    const { url, clock, store } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: gate,
      maxTotalKeys: 2,
    });
    await keysOf(url, POD);
    await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0 }));
    clock.advance(MINUTE);
    const res = await http(url, 'POST', POD, { count: 2 });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('BEACON_UNAVAILABLE');
    expect(store.storedCounts()).toMatchObject({ cooling: 2, fenced: 2, allocated: 0 });
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_liveness_gate_failures_total [1-9]/m,
    );
  });

  it('a stale review of an older incarnation changes nothing, and a top-up keeps the holder’s uid', async () => {
    const { url, allocator, store } = await startTestServer();
    await keysOf(url, POD, 1);
    await allocator.recordUid('validators/validator-0', 'new-uid');
    await keysOf(url, POD, 2); // a top-up rebuilds the pod record
    expect((await store.getPod('validators/validator-0'))?.uid).toBe('new-uid');
    const before = await store.rawEntries();
    await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0, uid: 'old-uid' }));
    expect(await store.rawEntries()).toEqual(before);
  });

  it.each([
    ['options that are not DeleteOptions', { options: { gracePeriodSeconds: 'now' } }],
    ['a negative grace period', { grace: -1 }],
    ['no userInfo', { userInfo: null }],
    ['a userInfo without a username', { userInfo: { uid: 'x', groups: [] } }],
    ['a status in the wrong shape', { status: { containerStatuses: 'running' } }],
  ])('refuses a review with %s: 400 INVALID_REVIEW, nothing changed', async (_what, over) => {
    const { url, store } = await startTestServer();
    await keysOf(url, POD);
    const before = await store.rawEntries();
    const res = await http(url, 'POST', HOOK, review(over));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_REVIEW');
    expect(await store.rawEntries()).toEqual(before);
  });
});
