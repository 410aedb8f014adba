// Faults an adversarial review found in the deletion webhook and the pod's own release (issue
// 11), kept as regression tests: each asserts the safe behaviour.
import { describe, expect, it } from 'vitest';
import { type AllocationBody, http, MINUTE, startTestServer } from '../helpers.js';
import { OPERATOR, review } from '../support/review.js';

const POD = '/v1/namespaces/validators/pods/validator-0/keys';
const HOOK = '/v1/webhooks/pod-deletion';
const keysOf = async (url: string, path: string, count = 1) => {
  const res = await http<AllocationBody>(url, 'POST', path, { count });
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
};

describe('break: webhook', () => {
  it('WH1 kubectl delete --force of a pod on a cut-off node whose last (stale) status shows its crashed VC terminated: fenced, not confirmed', async () => {
    const { url } = await startTestServer({ reuseDelayMs: 20 * MINUTE });
    const old = await keysOf(url, POD);
    // The API server's copy of the status is the last one the node sent before it was cut
    // off: the VC had just exited (restartPolicy Always: the kubelet restarts it, unseen).
    const status = {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'False' }],
      containerStatuses: [{ name: 'vc', state: { terminated: { exitCode: 1, reason: 'Error' } } }],
    };
    const res = await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0, status }));
    expect(res.status).toBe(200);
    const fresh = await keysOf(url, POD);
    expect(fresh).not.toEqual(old);
  });

  it('WH2 a null "terminated" in a review\'s container state is refused: 400, nothing changed', async () => {
    const { url, store } = await startTestServer({ reuseDelayMs: 20 * MINUTE });
    await keysOf(url, POD);
    const before = await store.rawEntries();
    const status = {
      phase: 'Running',
      containerStatuses: [{ name: 'vc', state: { terminated: null } }],
    };
    const res = await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0, status }));
    expect([res.status, res.body.error.code]).toEqual([400, 'INVALID_REVIEW']);
    expect(await store.rawEntries()).toEqual(before);
  });

  it("WH3 the old incarnation's own release (preStop `pkm release`, after a forced delete) releases the new incarnation's keys", async () => {
    const { url, clock } = await startTestServer({ reuseDelayMs: 20 * MINUTE });
    const old = await keysOf(url, POD);
    await http(url, 'POST', HOOK, review({ userInfo: OPERATOR, grace: 0, uid: 'uid-A' }));
    const fresh = await keysOf(url, POD); // the new validator-0 (uid-B) runs these
    expect(fresh).not.toEqual(old);
    // the old pod's preStop hook runs `pkm release` as validator-0, late (no token: no UID)
    await http<{ released: string[] }>(url, 'DELETE', POD);
    // The new pod's agent reports what it runs: its own keys, confirmed, come back to it.
    const beat = await http<{ reclaimed: string[] }>(
      url,
      'POST',
      '/v1/namespaces/validators/pods/validator-0/heartbeat',
      { pubkeys: fresh },
    );
    expect(beat.body.reclaimed).toEqual(fresh);
    clock.advance(20 * MINUTE);
    const other = await keysOf(url, '/v1/namespaces/validators/pods/other/keys', 2);
    expect(other).not.toContain(fresh[0]);
  });
});
