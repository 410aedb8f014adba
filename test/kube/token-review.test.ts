import { readFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeTokenReviewer, podFromReview, tokenExpiry } from '../../src/kube/token-review.js';
import { FakeClock, tempDir } from '../helpers.js';
import { makeCert } from '../support/certs.js';
import { FakeKubeApi } from './fake-api.js';

let api: FakeKubeApi;
beforeEach(async () => {
  api = new FakeKubeApi();
  await api.start();
});
afterEach(async () => {
  await api.stop();
});

function reviewer(clock: FakeClock): KubeTokenReviewer {
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfigYaml());
  return new KubeTokenReviewer(kc, 'pkm', clock.now);
}

describe('KubeTokenReviewer', () => {
  it('names the pod and its namespace, and the expiry from the token', async () => {
    const clock = new FakeClock();
    const issuedFrom = Math.floor(Date.now() / 1000);
    const token = api.issueToken('validators', 'node-1', 600);
    const issuedBy = Math.floor(Date.now() / 1000);
    const review = await reviewer(clock).review(token);
    expect(review).toEqual({
      pod: 'validators/node-1',
      uid: 'uid-node-1',
      expiresAt: tokenExpiry(token),
    });
    // Issued within [issuedFrom, issuedBy]: a second may tick over meanwhile on a busy machine.
    expect(review.expiresAt).toBeGreaterThanOrEqual((issuedFrom + 600) * 1000);
    expect(review.expiresAt).toBeLessThanOrEqual((issuedBy + 600) * 1000);
  });

  it('refuses a token for another audience', async () => {
    const token = api.issueToken('default', 'validator-0', 600, 'vault');
    await expect(reviewer(new FakeClock()).review(token)).rejects.toMatchObject({
      code: 'INVALID_TOKEN',
    });
  });

  it('over HTTPS, keeps reviews in flight when it resolves its credentials again', async () => {
    // As in a cluster: the API server's CA comes from the kubeconfig, as a new object each time
    // the credentials are resolved.
    await api.stop();
    const { cert, key } = await makeCert(await tempDir(), 'kube-apiserver');
    api = new FakeKubeApi();
    await api.start({ cert: await readFile(cert), key: await readFile(key) });
    expect(api.url).toMatch(/^https:/);
    const clock = new FakeClock();
    const r = reviewer(clock);
    const tokens = Array.from({ length: 20 }, (_, i) => api.issueToken('default', `v-${i}`));
    const inFlight = tokens.map((t) => r.review(t));
    clock.advance(11_000); // past the credentials' reuse: the next review resolves them anew
    const next = r.review(api.issueToken('default', 'v-late'));
    const all = await Promise.all([...inFlight, next]);
    expect(all.map((x) => x.pod)).toEqual([...tokens.map((_, i) => `v-${i}`), 'v-late']);
    expect(api.reviews).toBe(21);
  });
});

describe('podFromReview', () => {
  it('takes an empty pod UID for none (a record keeps a UID of one character at least)', () => {
    const review = (uid: string) => ({
      status: {
        authenticated: true,
        user: {
          username: 'system:serviceaccount:validators:default',
          extra: {
            'authentication.kubernetes.io/pod-name': ['node-1'],
            'authentication.kubernetes.io/pod-uid': [uid],
          },
        },
      },
    });
    expect(podFromReview(review(''), 'pkm').uid).toBeUndefined();
    expect(podFromReview(review('u-1'), 'pkm')).toEqual({ pod: 'validators/node-1', uid: 'u-1' });
  });
});
