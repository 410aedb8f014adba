import { describe, expect, it } from 'vitest';
import { type AllocationBody, type AssignmentsBody, http, startTestServer } from '../helpers.js';
import { review } from '../support/review.js';

interface ReviewAnswer {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean };
}

async function withPod(url: string, path = '/v1/namespaces/validators/pods/validator-0/keys') {
  const res = await http<AllocationBody>(url, 'POST', path, { count: 2 });
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
}

const assignments = async (url: string) =>
  (await http<AssignmentsBody>(url, 'GET', '/v1/assignments')).body;

describe('pod-deletion webhook', () => {
  it('releases a deleted pod to cooling and answers allowed, echoing the uid', async () => {
    const { url } = await startTestServer();
    await withPod(url);
    const res = await http<ReviewAnswer>(url, 'POST', '/v1/webhooks/pod-deletion', review());
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true },
    });
    expect((await assignments(url)).counts).toMatchObject({ cooling: 2, allocated: 0 });
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_webhook_reviews_total\{outcome="released"\} 1$/m,
    );
  });

  it('takes the pod from oldObject when the request has no name', async () => {
    const { url } = await startTestServer();
    await withPod(url);
    await http(
      url,
      'POST',
      '/v1/webhooks/pod-deletion',
      review({ name: '', oldName: 'validator-0' }),
    );
    expect((await assignments(url)).counts).toMatchObject({ cooling: 2 });
  });

  it.each([
    ['a dry run', { dryRun: true }],
    ['a CREATE', { operation: 'CREATE' }],
    ['an UPDATE', { operation: 'UPDATE' }],
    ['another kind', { kind: 'Deployment' }],
  ])('changes nothing for %s, and still allows it', async (_what, over) => {
    const { url, store } = await startTestServer();
    await withPod(url);
    const before = await store.rawEntries();
    const res = await http<ReviewAnswer>(url, 'POST', '/v1/webhooks/pod-deletion', review(over));
    expect(res.body.response.allowed).toBe(true);
    expect(await store.rawEntries()).toEqual(before);
  });

  it.each([
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }],
    ['an older API version', { ...review(), apiVersion: 'admission.k8s.io/v1beta1' }],
    ['no uid', { ...review(), request: { ...review().request, uid: '' } }],
    ['no pod name anywhere', review({ name: '', oldName: '' })],
    ['a bad namespace', review({ namespace: 'Not_A_Namespace' })],
  ])('refuses a malformed review (%s) with 400 and changes nothing', async (_what, body) => {
    const { url, store } = await startTestServer();
    await withPod(url);
    const before = await store.rawEntries();
    const res = await http(url, 'POST', '/v1/webhooks/pod-deletion', body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_REVIEW');
    expect(await store.rawEntries()).toEqual(before);
  });

  it('keys pods by namespace: the same name elsewhere is another pod', async () => {
    const { url } = await startTestServer();
    const there = await withPod(url);
    const here = await withPod(url, '/v1/pods/validator-0/keys');
    expect(here).not.toEqual(there);
    expect(Object.keys((await assignments(url)).pods).sort()).toEqual([
      'validator-0',
      'validators/validator-0',
    ]);
    await http(url, 'POST', '/v1/webhooks/pod-deletion', review({ namespace: 'default' }));
    expect((await assignments(url)).pods).toEqual({ 'validators/validator-0': there });
  });

  it("ignores a review of an older incarnation of a recreated pod (another UID than the holder's)", async () => {
    const { url, allocator, store } = await startTestServer();
    await withPod(url);
    await allocator.recordUid('validators/validator-0', 'new-uid');
    const before = await store.rawEntries();
    const stale = review();
    stale.request.oldObject.metadata.uid = 'old-uid';
    expect(
      (await http<ReviewAnswer>(url, 'POST', '/v1/webhooks/pod-deletion', stale)).body.response
        .allowed,
    ).toBe(true);
    expect(await store.rawEntries()).toEqual(before);
    stale.request.oldObject.metadata.uid = 'new-uid';
    await http(url, 'POST', '/v1/webhooks/pod-deletion', stale);
    expect((await assignments(url)).counts).toMatchObject({ cooling: 2, allocated: 0 });
  });

  it('ignores namespaces outside --namespace', async () => {
    const { url, store } = await startTestServer({ namespaces: ['validators'] });
    await withPod(url);
    const before = await store.rawEntries();
    const other = await http<ReviewAnswer>(
      url,
      'POST',
      '/v1/webhooks/pod-deletion',
      review({ namespace: 'other' }),
    );
    expect(other.body.response.allowed).toBe(true);
    expect(await store.rawEntries()).toEqual(before);
    const refused = await http(url, 'POST', '/v1/namespaces/other/pods/x/keys', { count: 1 });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('NAMESPACE_NOT_SERVED');
  });

  it('never blocks a deletion: a store failure is logged, counted, and still allowed', async () => {
    const { url, store } = await startTestServer();
    await withPod(url);
    await store.close();
    const res = await http<ReviewAnswer>(url, 'POST', '/v1/webhooks/pod-deletion', review());
    expect(res.status).toBe(200);
    expect(res.body.response.allowed).toBe(true);
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_webhook_reviews_total\{outcome="error"\} 1$/m,
    );
  });
});
