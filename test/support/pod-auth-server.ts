// A test server with an admin token and pod tokens, and a known chain (genesis time and root),
// as the live-move routes (issue 16) need: a pod's token is `pod-token-of-<pod>`, or
// `pod-token-of-<pod>@<uid>` for one incarnation of it; the fake reviewer answers for it as the
// Kubernetes TokenReview would (the pod, and its UID, `uid-<pod>` unless the token names one).
import { expect } from 'vitest';
import type { TokenReviewer } from '../../src/kube/token-review.js';
import { Auth } from '../../src/server/auth.js';
import { type AllocationBody, http, startTestServer } from '../helpers.js';
import { interchangeFor } from './interchange.js';

export const ADMIN = 'a'.repeat(64);
export const admin = { authorization: `Bearer ${ADMIN}` };
export const ROOT = `0x${'ab'.repeat(32)}`;
export const GENESIS = Date.UTC(2020, 11, 1) / 1000;

/** The headers of a pod's caller (of one incarnation, when `uid` is given). */
export const as = (pod: string, uid?: string) => ({
  authorization: `Bearer pod-token-of-${pod}${uid === undefined ? '' : `@${uid}`}`,
});

const TOKEN = /^pod-token-of-([a-z0-9-]+)(?:@([a-z0-9-]+))?$/;

export async function podAuthServer() {
  const reviewer: TokenReviewer = {
    review: async (token: string) => {
      const m = TOKEN.exec(token);
      const pod = m?.[1];
      if (pod === undefined) throw new Error('bad token');
      return { pod, uid: m?.[2] ?? `uid-${pod}`, expiresAt: undefined };
    },
  };
  return startTestServer({
    auth: new Auth({ adminTokens: [ADMIN], reviewer }),
    beacon: { genesisTime: GENESIS, genesisValidatorsRoot: ROOT },
  });
}

/** `pod` asks for `count` keys with its own token; returns their pubkeys. */
export async function allocate(url: string, pod: string, count: number): Promise<string[]> {
  const res = await http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count }, as(pod));
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
}

/** `pod`'s agent reports that its VC deleted `pubkey`, with the key's slashing history. */
export function reportDeleted(
  url: string,
  pod: string,
  pubkey: string,
  headers: Record<string, string> = as(pod),
) {
  return http<{ keys: Array<{ outcome: string }> }>(
    url,
    'POST',
    `/v1/pods/${pod}/removals`,
    {
      keys: [{ pubkey, status: 'deleted' }],
      slashing_protection: JSON.stringify(interchangeFor(ROOT, [pubkey])),
    },
    headers,
  );
}
