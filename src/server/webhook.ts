// POST /v1/webhooks/pod-deletion: a Kubernetes ValidatingWebhook for DELETE on pods
// (admission.k8s.io/v1 AdmissionReview). A deleted pod's keys start cooling. It never blocks a
// deletion: the answer is always allowed, even when the store fails (that is logged and counted).
// A deletion does not prove that the pod stopped (DESIGN.md "Safety rules"); the review tells
// how much it proves:
//   - the kubelet's own final DELETE (user system:node:<the pod's node>, gracePeriodSeconds 0),
//     or an old object whose status shows every container stopped: confirmed;
//   - gracePeriodSeconds 0 from anyone else: forced (kubectl delete --force, the pod garbage
//     collector after a node is gone): the containers may still run on a cut-off node
//     (kubernetes#73470), so the keys are fenced;
//   - any other DELETE: graceful, unconfirmed until the kubelet's DELETE follows.
// Who may send one is checked before the body is read (apiServerOnly, below).
import { TLSSocket } from 'node:tls';
import express, { type NextFunction, type Request, type Response, Router } from 'express';
import type { StopProof } from '../allocation/allocator.js';
import { type AdmissionAnswer, type AdmissionRequest, AdmissionReview } from '../api/admission.js';
import { parseNamespace, parsePodName, podIdentity } from '../api/names.js';
import { ROUTES } from '../api/paths.js';
import { messageOf, PkmError } from '../errors.js';
import { knownStopped } from '../kube/pod-view.js';
import { type Auth, callerOf, describeCaller } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import type { WebhookOutcome } from './metrics.js';

/** Reviews carry the whole old pod; Kubernetes objects stay well under this. */
const REVIEW_LIMIT = '3mb';

type WebhookDeps = Pick<
  AppDeps,
  'allocator' | 'log' | 'metrics' | 'namespaces' | 'webhookClientCert'
> & { readonly auth: Auth };

export function webhookRoutes(deps: WebhookDeps): Router {
  const router = Router();
  router
    .route(ROUTES.podDeletionWebhook)
    .post(
      apiServerOnly(deps),
      express.json({ limit: REVIEW_LIMIT, strict: true, type: 'application/json' }),
      async (req, res) => {
        const parsed = AdmissionReview.safeParse(req.body);
        if (!parsed.success) {
          throw new PkmError(
            'INVALID_REVIEW',
            `not an admission.k8s.io/v1 AdmissionReview: ${parsed.error.issues[0]?.message ?? ''}`,
          );
        }
        const { request } = parsed.data;
        const answer: AdmissionAnswer = {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: request.uid, allowed: true },
        };
        const outcome = await review(request, deps);
        deps.metrics.onWebhook(outcome);
        res.json(answer);
      },
    )
    .all(methodNotAllowed('POST'));
  return router;
}

async function review(
  request: AdmissionRequest,
  deps: Pick<AppDeps, 'allocator' | 'log' | 'namespaces'>,
): Promise<WebhookOutcome> {
  if (request.operation !== 'DELETE' || request.kind.kind !== 'Pod' || request.kind.group !== '')
    return 'ignored';
  const meta = request.oldObject?.metadata;
  const rawName = request.name || meta?.name;
  const rawNamespace = request.namespace || meta?.namespace || 'default';
  let name: string;
  let namespace: string;
  try {
    name = parsePodName(rawName);
    namespace = parseNamespace(rawNamespace);
  } catch (err) {
    throw new PkmError('INVALID_REVIEW', `the review names no valid pod: ${messageOf(err)}`);
  }
  const served = deps.namespaces ?? [];
  if (served.length > 0 && !served.includes(namespace)) return 'ignored';
  if (request.dryRun) return 'dry-run';
  const identity = podIdentity(namespace, name);
  const stop = stopOf(request);
  try {
    // The allocator ignores a review of an older incarnation of a recreated pod (its uid).
    const released = await deps.allocator.release(identity, { stop, uid: meta?.uid });
    deps.log.info(
      {
        pod: identity,
        released: released.length,
        stop,
        by: request.userInfo.username,
        uid: request.uid,
      },
      'pod deleted: its keys cool',
    );
    return 'released';
  } catch (err) {
    // Never block a deletion: Kubernetes would retry or give up, and the pod goes anyway.
    deps.log.error({ err, pod: identity, uid: request.uid }, 'pod deletion not recorded');
    return 'error';
  }
}

/** What a DELETE review proves about the pod's containers (see the top of this file). */
function stopOf(request: AdmissionRequest): StopProof {
  const old = request.oldObject;
  if (old && knownStopped(old)) return 'confirmed';
  if (request.options?.gracePeriodSeconds !== 0) return 'unconfirmed';
  const node = old?.spec?.nodeName;
  const kubelet =
    node !== undefined &&
    request.userInfo.username === `system:node:${node}` &&
    (request.userInfo.groups ?? []).includes('system:nodes');
  return kubelet ? 'confirmed' : 'forced';
}

/**
 * DELETE reviews count only from the API server or an admin once any authentication is on
 * (DESIGN.md "Safety rules"): a review releases a running pod's keys, and one that claims the
 * kubelet's final DELETE hands them straight back to a new pod of the same name. The API server
 * proves itself with a client certificate that --webhook-client-ca signed (its
 * AdmissionConfiguration kubeconfig, deploy/apiserver/). A pod token is refused like no token:
 * a pod could otherwise report its neighbours deleted. With no authentication configured at all
 * (loopback only, or --insecure) every route is open, and so is this one, unless the CA is set.
 */
function apiServerOnly(deps: WebhookDeps) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const caller = callerOf(res);
    const socket = req.socket instanceof TLSSocket ? req.socket : undefined;
    // With --webhook-client-ca the TLS server asks for a certificate and verifies it against
    // that CA alone (tls.ts): `authorized` is false for none, and for one another CA signed.
    const certified = deps.webhookClientCert === true && socket?.authorized === true;
    const open = !deps.auth.enabled && !deps.webhookClientCert;
    if (open || certified || caller.kind === 'admin') {
      next();
      return;
    }
    deps.metrics.onWebhook('refused');
    deps.log.warn(
      {
        caller: describeCaller(caller),
        certificate: socket?.authorizationError?.toString() ?? 'none',
      },
      'deletion review refused: not from the API server or an admin',
    );
    const notPod = caller.kind === 'pod' ? ', not a pod token' : '';
    throw new PkmError(
      'FORBIDDEN',
      deps.webhookClientCert
        ? `the deletion webhook answers only the API server (a client certificate signed by --webhook-client-ca) or an admin token${notPod}`
        : `the deletion webhook answers only an admin token${notPod}: this server has no --webhook-client-ca to know the API server by its client certificate`,
    );
  };
}
