// Pod tokens, checked by the Kubernetes API server: a TokenReview (authentication.k8s.io/v1)
// of the pod's projected ServiceAccount token, for our audience. A projected token is bound
// to its pod: the review's user names the ServiceAccount's namespace
// (system:serviceaccount:<namespace>:<name>), and its extra fields the pod
// (authentication.kubernetes.io/pod-name, pod-uid).
import { AuthenticationV1Api, type KubeConfig, type V1TokenReview } from '@kubernetes/client-node';
import { parseNamespace, parsePodName, podIdentity } from '../allocation/pod-name.js';
import { PkmError } from '../errors.js';
import type { PodToken, TokenReviewer } from '../server/auth.js';

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const SERVICE_ACCOUNT = /^system:serviceaccount:([^:]+):[^:]+$/;

/** The `exp` claim of a JWT, in ms; only bounds the cache (the review is what verifies). */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The pod a successful review names, or INVALID_TOKEN / FORBIDDEN. */
export function podFromReview(
  review: V1TokenReview,
  audience: string,
): Omit<PodToken, 'expiresAt'> {
  const status = review.status;
  if (status?.authenticated !== true)
    throw new PkmError('INVALID_TOKEN', 'the token is not valid (expired, revoked or not ours)');
  if (status.audiences !== undefined && !status.audiences.includes(audience))
    throw new PkmError('INVALID_TOKEN', `the token is not for audience ${audience}`);
  const namespace = SERVICE_ACCOUNT.exec(status.user?.username ?? '')?.[1];
  const name = status.user?.extra?.[POD_NAME]?.[0];
  if (namespace === undefined || name === undefined)
    throw new PkmError(
      'FORBIDDEN',
      'the token is not bound to a pod: mount a projected ServiceAccount token (audience pkm)',
    );
  return {
    pod: podIdentity(parseNamespace(namespace), parsePodName(name)),
    uid: status.user?.extra?.[POD_UID]?.[0],
  };
}

export class KubeTokenReviewer implements TokenReviewer {
  private readonly api: AuthenticationV1Api;

  constructor(
    kc: KubeConfig,
    private readonly audience: string,
  ) {
    this.api = kc.makeApiClient(AuthenticationV1Api);
  }

  async review(token: string): Promise<PodToken> {
    let review: V1TokenReview;
    try {
      review = await this.api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [this.audience] },
        },
      });
    } catch (err) {
      // Never the token: only why the API server could not answer.
      const reason = err instanceof Error ? err.message.split('\n')[0] : 'error';
      throw new PkmError('AUTH_UNAVAILABLE', `the TokenReview API did not answer: ${reason}`, {
        retryAfter: 5,
      });
    }
    return { ...podFromReview(review, this.audience), expiresAt: tokenExpiry(token) };
  }
}
