// Pod tokens, checked by the Kubernetes API server: a TokenReview (authentication.k8s.io/v1)
// of the pod's projected ServiceAccount token, for our audience. A projected token is bound
// to its pod: the review's user names the ServiceAccount's namespace
// (system:serviceaccount:<namespace>:<name>), and its extra fields the pod
// (authentication.kubernetes.io/pod-name, pod-uid).
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig, V1TokenReview } from '@kubernetes/client-node';
import { z } from 'zod';
import { parseNamespace, parsePodName, podIdentity } from '../api/names.js';
import { PkmError } from '../errors.js';

/** A verified pod token: the identity (podIdentity) and when the token stops being valid. */
export interface PodToken {
  readonly pod: string;
  readonly uid: string | undefined;
  /** ms since the epoch; undefined when the token does not say (then it is never cached). */
  readonly expiresAt: number | undefined;
}

export interface TokenReviewer {
  /** The pod a token belongs to; INVALID_TOKEN when it is not valid. */
  review(token: string): Promise<PodToken>;
}

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

/** The parts of a TokenReview answer that are read (authentication.k8s.io/v1). */
const ReviewAnswer = z.object({
  status: z
    .object({
      authenticated: z.boolean().optional(),
      audiences: z.array(z.string()).optional(),
      user: z
        .object({
          username: z.string().optional(),
          extra: z.record(z.string(), z.array(z.string())).optional(),
        })
        .optional(),
    })
    .optional(),
});

type ReviewAnswer = z.infer<typeof ReviewAnswer>;

/** The pod a successful review names, or INVALID_TOKEN / FORBIDDEN. */
export function podFromReview(review: ReviewAnswer, audience: string): Omit<PodToken, 'expiresAt'> {
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
    // An empty UID is no UID: a record keeps a UID of one character at least (records.ts).
    uid: status.user?.extra?.[POD_UID]?.[0] || undefined,
  };
}

type TlsMaterial = Pick<
  RequestOptions,
  'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'
>;

const REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const REVIEW_TIMEOUT_MS = 5_000;
const CREDENTIALS_MS = 10_000;

/**
 * TokenReviews over one keep-alive connection pool. The kubeconfig (in-cluster or a file)
 * gives the server, CA, client certificate and bearer token through client-node's
 * applyToHTTPSOptions; the request itself is a plain POST because the generated client makes a
 * new agent, so a new TCP and TLS connection, per call: a quarter of the throughput measured
 * with bench/auth, on the path of every pod's first request.
 */
export class KubeTokenReviewer implements TokenReviewer {
  private agent: { material: TlsMaterial; agent: HttpsAgent | HttpAgent } | undefined;
  private resolved: { opts: RequestOptions; at: number } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly audience: string,
    private readonly clock: () => number = Date.now,
  ) {}

  async review(token: string): Promise<PodToken> {
    let review: ReviewAnswer;
    try {
      review = await this.post({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [this.audience] },
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

  /**
   * The kubeconfig's credentials, resolved at most every few seconds: client-node re-reads an
   * in-cluster token file itself (kubelet rotates it), so a short reuse loses nothing.
   */
  private async credentials(): Promise<RequestOptions> {
    const now = this.clock();
    if (this.resolved && now - this.resolved.at < CREDENTIALS_MS) return this.resolved.opts;
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    this.resolved = { opts, at: now };
    return opts;
  }

  private agentFor(url: URL, material: TlsMaterial): HttpsAgent | HttpAgent {
    const cached = this.agent;
    // The same objects while the credentials are cached; after that, compared by content
    // (they are resolved again every few seconds, as new objects).
    const same = (k: keyof TlsMaterial) =>
      cached?.material[k] === material[k] ||
      JSON.stringify(cached?.material[k]) === JSON.stringify(material[k]);
    if (cached && same('ca') && same('cert') && same('key') && same('rejectUnauthorized'))
      return cached.agent;
    // A rotated client certificate: the old pool finishes the reviews in flight first.
    if (cached) setTimeout(() => cached.agent.destroy(), REVIEW_TIMEOUT_MS).unref();
    const agent =
      url.protocol === 'https:'
        ? new HttpsAgent({ ...material, keepAlive: true })
        : new HttpAgent({ keepAlive: true });
    this.agent = { material, agent };
    return agent;
  }

  private async post(body: V1TokenReview): Promise<ReviewAnswer> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig names no cluster');
    const opts = await this.credentials();
    const url = new URL(
      REVIEW_PATH,
      cluster.server.endsWith('/') ? cluster.server : `${cluster.server}/`,
    );
    const { ca, cert, key, rejectUnauthorized, servername } = opts;
    const material: TlsMaterial = { ca, cert, key, rejectUnauthorized, servername };
    const payload = JSON.stringify(body);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, {
        method: 'POST',
        agent: this.agentFor(url, material),
        headers: {
          ...opts.headers,
          ...(opts.auth
            ? { authorization: `Basic ${Buffer.from(opts.auth).toString('base64')}` }
            : {}),
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      });
      // A socket timeout, not AbortSignal.timeout: no timer object per review on this hot path.
      req.setTimeout(REVIEW_TIMEOUT_MS, () => req.destroy(new Error('timed out')));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.on('error', reject);
      req.end(payload);
    });
    if (answer.status !== 200 && answer.status !== 201)
      throw new Error(`HTTP ${answer.status} from ${url.origin}`);
    const parsed = ReviewAnswer.safeParse(JSON.parse(answer.text));
    if (!parsed.success) throw new Error(`not a TokenReview from ${url.origin}`);
    return parsed.data;
  }
}
