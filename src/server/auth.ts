// Who is asking. Pods present their projected ServiceAccount token (checked with a Kubernetes
// TokenReview, token-review.ts); operators present an admin token from --auth-token-file.
// A pod may touch only its own identity; admin routes need an admin token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { makeRoom } from '../bounded-map.js';
import { PkmError } from '../errors.js';
import type { PodToken, TokenReviewer } from '../kube/token-review.js';

export type Caller =
  | { readonly kind: 'admin'; readonly id: string }
  | { readonly kind: 'pod'; readonly pod: string; readonly uid: string | undefined }
  | { readonly kind: 'anonymous' };

export interface AuthOptions {
  /** Admin tokens (--auth-token-file). */
  readonly adminTokens: readonly string[];
  readonly reviewer?: TokenReviewer;
  /** /assignments without a token (--public-assignments). */
  readonly publicAssignments?: boolean;
  readonly clock?: () => number;
  /** Longest a review is cached, even for a token valid for longer. */
  readonly cacheMs?: number;
}

const MAX_CACHED = 10_000;

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class Auth {
  private readonly admins: Array<{ id: string; digest: Buffer }>;
  private readonly cache = new Map<string, PodToken & { readonly until: number }>();
  private readonly clock: () => number;

  constructor(private readonly opts: AuthOptions) {
    this.admins = opts.adminTokens.map((t) => ({
      id: digest(t).toString('hex').slice(0, 8),
      digest: digest(t),
    }));
    this.clock = opts.clock ?? Date.now;
  }

  /** False: no token is asked for (loopback only, or --insecure). */
  get enabled(): boolean {
    return this.admins.length > 0 || this.opts.reviewer !== undefined;
  }

  get publicAssignments(): boolean {
    return this.opts.publicAssignments === true;
  }

  /** The caller of a request, from its Authorization header. */
  async identify(header: string | undefined): Promise<Caller> {
    if (header === undefined || header === '') return { kind: 'anonymous' };
    const bearer = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    // Basic, for a browser opening /assignments: the password is the admin token.
    const basic = /^Basic\s+(\S+)$/i.exec(header)?.[1];
    const token = bearer ?? (basic === undefined ? undefined : basicPassword(basic));
    if (token === undefined)
      throw new PkmError('INVALID_TOKEN', 'send the token as "Authorization: Bearer <token>"');
    const admin = this.admin(token);
    if (admin) return admin;
    if (bearer === undefined || !this.opts.reviewer)
      throw new PkmError('INVALID_TOKEN', 'the token is not valid');
    return this.pod(token, this.opts.reviewer);
  }

  /** Compared in constant time against every admin token (no early exit). */
  private admin(token: string): Caller | undefined {
    const given = digest(token);
    let found: string | undefined;
    for (const a of this.admins) if (timingSafeEqual(given, a.digest)) found = a.id;
    return found === undefined ? undefined : { kind: 'admin', id: found };
  }

  private async pod(token: string, reviewer: TokenReviewer): Promise<Caller> {
    const key = digest(token).toString('hex');
    const now = this.clock();
    const cached = this.cache.get(key);
    if (cached && cached.until > now) return { kind: 'pod', pod: cached.pod, uid: cached.uid };
    this.cache.delete(key);
    const review = await reviewer.review(token);
    if (review.expiresAt !== undefined && review.expiresAt <= now)
      throw new PkmError('INVALID_TOKEN', 'the token has expired');
    if (review.expiresAt !== undefined) {
      // Briefly, and never past the token's own expiry.
      const until = Math.min(review.expiresAt, now + (this.opts.cacheMs ?? 60_000));
      makeRoom(this.cache, MAX_CACHED);
      this.cache.set(key, { ...review, until });
    }
    return { kind: 'pod', pod: review.pod, uid: review.uid };
  }
}

function basicPassword(encoded: string): string | undefined {
  const text = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : text.slice(colon + 1);
}

/** Who made each request in flight, as `authenticate` found (typed, unlike res.locals). */
const callers = new WeakMap<ServerResponse, Caller>();
/**
 * Whether any caller was ever noted in this process. Until one is, every lookup would miss,
 * and a miss on an answer object costs it an identity hash: about 2% of an allocation on a
 * server without tokens (bench/allocate's profile).
 */
let noted = false;
const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous' });

/**
 * Notes the caller of the request `res` answers, from its Authorization header; a token that
 * is presented must be valid (401). Without tokens every caller is anonymous: nothing to note.
 */
export async function noteCaller(
  auth: Auth,
  authorization: string | undefined,
  res: ServerResponse,
): Promise<void> {
  if (!auth.enabled) return;
  const caller = await auth.identify(authorization);
  noted = true;
  callers.set(res, caller);
}

/** noteCaller as express middleware. */
export function authenticate(auth: Auth) {
  if (!auth.enabled) return (_req: Request, _res: Response, next: NextFunction): void => next();
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    await noteCaller(auth, req.get('authorization'), res);
    next();
  };
}

export function callerOf(res: ServerResponse): Caller {
  return (noted ? callers.get(res) : undefined) ?? ANONYMOUS;
}

/** How a caller is named in logs: never the token itself. */
export function describeCaller(caller: Caller): string {
  if (caller.kind === 'admin') return `admin:${caller.id}`;
  if (caller.kind === 'pod') return `pod:${caller.pod}`;
  return 'anonymous';
}

function authRequired(what: string): PkmError {
  return new PkmError(
    'AUTH_REQUIRED',
    `${what} needs a token: send "Authorization: Bearer <token>"`,
  );
}

/** Operators only: releasing other pods, retiring keys, exports, the events log, KEK rotation. */
export function requireAdmin(auth: Auth, res: ServerResponse, what: string): void {
  if (!auth.enabled) return;
  const caller = callerOf(res);
  if (caller.kind === 'admin') return;
  if (caller.kind === 'anonymous') throw authRequired(what);
  throw new PkmError('FORBIDDEN', `${what} needs an admin token; a pod token is not enough`);
}

/** A pod may act only for itself; an admin for any pod. */
export function requirePod(auth: Auth, res: ServerResponse, pod: string): void {
  if (!auth.enabled) return;
  const caller = callerOf(res);
  if (caller.kind === 'admin' || (caller.kind === 'pod' && caller.pod === pod)) return;
  if (caller.kind === 'anonymous') throw authRequired(`pod ${pod}'s keys`);
  throw new PkmError('FORBIDDEN', `the token of pod ${caller.pod} does not give access to ${pod}`);
}

/** Admin tokens, one per line (# comments), each at least 256 bits: 64 hex or 43 base64. */
export function parseAdminTokens(text: string, source: string): string[] {
  const tokens = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (tokens.length === 0)
    throw new PkmError('INVALID_CONFIG', `${source} holds no token (one per line)`);
  for (const t of tokens) {
    const bytes = /^[0-9a-fA-F]+$/.test(t)
      ? t.length / 2
      : /^[A-Za-z0-9+/_-]+=*$/.test(t)
        ? Math.floor((t.replace(/=+$/, '').length * 6) / 8)
        : 0;
    if (bytes < 32)
      throw new PkmError(
        'INVALID_CONFIG',
        `${source}: each token must be at least 256 bits, as 64 hex digits or 43 base64 characters (e.g. openssl rand -hex 32)`,
      );
  }
  return tokens;
}
