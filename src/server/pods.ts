// Allocate, read and release one pod's keys:
//   /v1/namespaces/{namespace}/pods/{pod}/keys, and /v1/pods/{pod}/keys for the default namespace.
import type { ServerResponse } from 'node:http';
import express, { type Request, type Response, Router } from 'express';
import type { RootAuthority } from '../allocation/protection.js';
import { type IgnoredKey, type Interchange, toInterchange } from '../api/interchange.js';
import { SetCountBody } from '../api/moves.js';
import { DEFAULT_NAMESPACE, parseNamespace, parsePodName, podIdentity } from '../api/names.js';
import { podTemplates } from '../api/paths.js';
import { AllocateBody } from '../api/pod-keys.js';
import { PkmError } from '../errors.js';
import { toHex } from '../keys/bls.js';
import {
  type Auth,
  type Caller,
  callerOf,
  describeCaller,
  requireAdmin,
  requirePod,
} from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import { sendJson, smallJsonBody } from './json-io.js';

/** The caller's pod UID, when its token named one (TokenReview). */
export function podUid(res: ServerResponse): string | undefined {
  const caller = callerOf(res);
  return caller.kind === 'pod' ? caller.uid : undefined;
}

/**
 * Who this caller is for the store's genesis root (protection.ts RootAuthority): a pod never
 * fixes it once tokens are on; with no authentication at all, nobody can be told apart.
 */
function rootAuthority(auth: Auth, caller: Caller): RootAuthority {
  if (!auth.enabled) return 'open';
  return caller.kind === 'admin' ? 'admin' : 'pod';
}

function countReasons(ignored: readonly IgnoredKey[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { reason } of ignored) counts[reason] = (counts[reason] ?? 0) + 1;
  return counts;
}

/** Rate limits count per authenticated caller; without auth, per pod asked for. */
export function rateIdentity(caller: Caller, pod: string): string {
  return caller.kind === 'anonymous' ? `pod:${pod}` : describeCaller(caller);
}

/** Bodies here are tiny ({"count":n}); anything larger (16 KiB) is refused before it is parsed. */
export const BODY_LIMIT = 16 * 1024;
/** A full-history EIP-3076 file for a pod's keys. */
const INTERCHANGE_LIMIT = '10mb';

/**
 * The pod named by the path, checked against the served namespaces and the caller's token,
 * with its identity in the store and its fields for the answer.
 */
export function podTarget(
  deps: Pick<AppDeps, 'namespaces'> & { readonly auth: Auth },
  req: Request,
  res: Response,
) {
  return podTargetOf(deps, req.params, res);
}

/** podTarget, from the path's parameters as they were matched. */
export function podTargetOf(
  deps: Pick<AppDeps, 'namespaces'> & { readonly auth: Auth },
  params: { readonly namespace?: unknown; readonly pod?: unknown },
  res: ServerResponse,
) {
  const namespace =
    params.namespace === undefined ? DEFAULT_NAMESPACE : parseNamespace(params.namespace);
  const name = parsePodName(params.pod);
  const served = deps.namespaces ?? [];
  if (served.length > 0 && !served.includes(namespace)) {
    throw new PkmError(
      'NAMESPACE_NOT_SERVED',
      `this server serves namespaces ${served.join(', ')}, not ${namespace} (--namespace)`,
    );
  }
  const shown = namespace === DEFAULT_NAMESPACE ? { pod: name } : { namespace, pod: name };
  const id = podIdentity(namespace, name);
  requirePod(deps.auth, res, id);
  return { id, shown, namespace, name };
}

/**
 * POST …/keys once its caller is known and its body read (the express route below, and the
 * shortcut past express, allocation-shortcut.ts): the rate limit, the body's shape, the
 * allocation, and the answer with the keys.
 */
export async function answerAllocation(
  deps: Pick<AppDeps, 'allocator' | 'rateLimiter'>,
  { id, shown }: { readonly id: string; readonly shown: Record<string, string> },
  raw: unknown,
  res: ServerResponse,
): Promise<void> {
  deps.rateLimiter?.take(rateIdentity(callerOf(res), id));
  const body = AllocateBody.safeParse(raw);
  if (!body.success) {
    throw new PkmError(
      'INVALID_BODY',
      `expected {"count": n}: ${body.error.issues.map((i) => i.message).join('; ')}`,
    );
  }
  // A pod's token names its UID (TokenReview): recorded as the holder's incarnation.
  const allocation = await deps.allocator.allocate(id, body.data.count, podUid(res));
  // The body carries secret keys: no cache may keep it.
  res.setHeader('cache-control', 'no-store');
  const root = allocation.genesisValidatorsRoot;
  // Field by field rather than by spreads (see transitions.ts inState): this runs per key.
  const keys = allocation.keys.map((k) => {
    const key: AnsweredKey = { pubkey: k.pubkey, secretKey: toHex(k.secretKey) };
    if (k.path !== undefined) key.path = k.path;
    // EIP-3076: what the new holder must import before it signs.
    if (k.protection && root)
      key.slashingProtection = toInterchange(root, [[k.pubkey, k.protection]]);
    return key;
  });
  sendJson(res, Object.assign({}, shown, { keys }));
}

/** A key in the answer to POST …/keys (DESIGN.md "HTTP API"). */
interface AnsweredKey {
  pubkey: string;
  secretKey: string;
  path?: string;
  slashingProtection?: Interchange;
}

export function podRoutes(
  deps: Pick<
    AppDeps,
    | 'allocator'
    | 'moves'
    | 'namespaces'
    | 'bootToken'
    | 'heartbeats'
    | 'clock'
    | 'rateLimiter'
    | 'log'
  > & { readonly auth: Auth },
): Router {
  const router = Router();
  // The allocation is the hot path: its plain bodies skip express.json (json-io.ts).
  const json = smallJsonBody(BODY_LIMIT);

  const target = (req: Request, res: Response) => podTarget(deps, req, res);

  for (const path of podTemplates('keys')) {
    router
      .route(path)
      .post(json, async (req, res) => {
        await answerAllocation(deps, target(req, res), req.body, res);
      })
      .get(async (req, res) => {
        const { id, shown } = target(req, res);
        res.json({ ...shown, pubkeys: await deps.allocator.podKeys(id) });
      })
      .delete(async (req, res) => {
        const { id, shown } = target(req, res);
        // The pod's own release (pkm release, on its way out) confirms its stop; its token's UID
        // keeps a late release of an older incarnation from releasing the new one's keys.
        const uid = podUid(res);
        res.json({
          ...shown,
          released: await deps.allocator.release(id, { stop: 'confirmed', uid }),
        });
      })
      // A running pod's count (issue 16): its agent makes the VC follow (allocation/moves.ts).
      .put(
        (_req, res, next) => {
          requireAdmin(deps.auth, res, "changing a running pod's count");
          next();
        },
        json,
        async (req, res) => {
          const { id, shown } = target(req, res);
          const body = SetCountBody.safeParse(req.body);
          if (!body.success)
            throw new PkmError(
              'INVALID_BODY',
              `expected {"count": n}: ${body.error.issues.map((i) => i.message).join('; ')}`,
            );
          const result = await deps.moves.setCount(id, body.data.count);
          deps.log.warn(
            {
              caller: describeCaller(callerOf(res)),
              pod: id,
              count: body.data.count,
              leaving: result.leaving.length,
            },
            "a running pod's count changed",
          );
          res.json({ ...shown, keys: result.keys, leaving: result.leaving });
        },
      )
      .all(methodNotAllowed('GET', 'POST', 'PUT', 'DELETE'));
  }
  const interchangeJson = express.json({
    limit: INTERCHANGE_LIMIT,
    strict: true,
    type: 'application/json',
  });
  for (const path of podTemplates('slashing-protection')) {
    router
      .route(path)
      .post(interchangeJson, async (req, res) => {
        const { id, shown } = target(req, res);
        const caller = callerOf(res);
        const result = await deps.allocator.uploadProtection(
          id,
          req.body,
          rootAuthority(deps.auth, caller),
        );
        if (result.fixedRoot !== undefined)
          deps.log.warn(
            { pod: id, caller: describeCaller(caller), genesisValidatorsRoot: result.fixedRoot },
            "this upload fixed the store's genesis_validators_root: every later upload must match it",
          );
        if (result.ignored.length > 0)
          deps.log.warn(
            { pod: id, ignored: countReasons(result.ignored) },
            'slashing protection for keys the pod does not hold was not stored',
          );
        // `pubkeys` as before (what was stored); `ignored` names the rest, never dropped silently.
        res.json({ ...shown, pubkeys: result.stored, ignored: result.ignored });
      })
      .all(methodNotAllowed('POST'));
  }
  return router;
}
