// The allocation's shortcut past express (issue 17, point 4). express's request handling (its
// prototypes swapped onto every request and answer, a router walking its layers, a nested
// router, a route's dispatch) cost an allocation as much main-thread work as node:http and the
// LevelDB batch of the benchmark's floor together (bench/allocate, measured in instructions).
// A plain POST …/keys (canonical path, no query, a small JSON body sent plainly) is served
// here, by the very functions the express route runs, in its order: the request's id, metric
// and log line (request-log.ts), its caller (auth.ts), its body (json-io.ts), its pod
// (podTargetOf), then the rate limit, the body's shape, the allocation and the answer
// (answerAllocation). Everything else, and every other spelling of the same request, goes to
// express, which answers as it always did.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { podTemplates } from '../api/paths.js';
import { type Auth, noteCaller } from './auth.js';
import type { AppDeps } from './deps.js';
import { answerError } from './http-errors.js';
import { plainJsonLength, readPlainJson } from './json-io.js';
import { answerAllocation, BODY_LIMIT, podTargetOf } from './pods.js';
import { requestObserver } from './request-log.js';

/**
 * The two allocation paths, in their canonical spelling only: lower case, no query, no
 * trailing slash, and names of the characters Kubernetes allows (nothing percent-encoded, so
 * that the names need no decoding). podTargetOf checks the names as the express route does.
 */
const CANONICAL = /^\/v1\/(?:namespaces\/([a-z0-9-]+)\/)?pods\/([a-z0-9.-]+)\/keys$/;
const [PLAIN_ROUTE, NAMESPACED_ROUTE] = podTemplates('keys');

export type ShortcutDeps = Pick<
  AppDeps,
  'allocator' | 'namespaces' | 'rateLimiter' | 'metrics' | 'log'
> & { readonly auth: Auth };

/** A request listener: the plain allocations served here, every other request by `app`. */
export function allocationShortcut(deps: ShortcutDeps, app: RequestListener): RequestListener {
  const observe = requestObserver(deps);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const match = req.method === 'POST' ? CANONICAL.exec(req.url ?? '') : null;
    const length = match ? plainJsonLength(req.headers, BODY_LIMIT) : undefined;
    if (!match || length === undefined) {
      app(req, res);
      return;
    }
    const [, namespace, pod] = match;
    observe(req, res, () => ({
      route: namespace === undefined ? PLAIN_ROUTE : NAMESPACED_ROUTE,
      pod,
    }));
    serve(deps, req, res, { namespace, pod }, length).catch((err: unknown) =>
      answerError(deps.log, req, res, err),
    );
  };
}

async function serve(
  deps: ShortcutDeps,
  req: IncomingMessage,
  res: ServerResponse,
  params: { readonly namespace: string | undefined; readonly pod: string | undefined },
  length: number,
): Promise<void> {
  await noteCaller(deps.auth, req.headers.authorization, res);
  const body = await readPlainJson(req, length);
  await answerAllocation(deps, podTargetOf(deps, params, res), body, res);
}
