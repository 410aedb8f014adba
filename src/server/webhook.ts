// POST /v1/webhooks/pod-deletion: a Kubernetes ValidatingWebhook for DELETE on pods
// (admission.k8s.io/v1 AdmissionReview). A deleted pod's keys start cooling. It never blocks a
// deletion: the answer is always allowed, even when the store fails (that is logged and counted).
import { TLSSocket } from 'node:tls';
import express, { type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { parseNamespace, parsePodName, podIdentity } from '../allocation/pod-name.js';
import { PkmError } from '../errors.js';
import type { AppDeps } from './app.js';
import { callerOf } from './auth.js';
import { methodNotAllowed } from './http-errors.js';

/** Reviews carry the whole old pod; Kubernetes objects stay well under this. */
const REVIEW_LIMIT = '3mb';

const Meta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
  })
  .passthrough();
const Review = z
  .object({
    apiVersion: z.literal('admission.k8s.io/v1'),
    kind: z.literal('AdmissionReview'),
    request: z
      .object({
        uid: z.string().min(1),
        kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }).passthrough(),
        operation: z.string(),
        name: z.string().optional(),
        namespace: z.string().optional(),
        dryRun: z.boolean().optional(),
        oldObject: z.object({ metadata: Meta.optional() }).passthrough().nullable().optional(),
      })
      .passthrough(),
  })
  .passthrough();

export type WebhookOutcome = 'released' | 'ignored' | 'dry-run' | 'error';

export function webhookRoutes(
  deps: Pick<AppDeps, 'allocator' | 'log' | 'metrics' | 'namespaces' | 'webhookClientCert'>,
): Router {
  const router = Router();
  router
    .route('/v1/webhooks/pod-deletion')
    .post(
      express.json({ limit: REVIEW_LIMIT, strict: true, type: 'application/json' }),
      async (req, res) => {
        if (deps.webhookClientCert) requireApiServer(req, res);
        const parsed = Review.safeParse(req.body);
        if (!parsed.success) {
          throw new PkmError(
            'INVALID_REVIEW',
            `not an admission.k8s.io/v1 AdmissionReview: ${parsed.error.issues[0]?.message ?? ''}`,
          );
        }
        const { request } = parsed.data;
        const answer = {
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
  request: z.infer<typeof Review>['request'],
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
    throw new PkmError(
      'INVALID_REVIEW',
      `the review names no valid pod: ${(err as Error).message}`,
    );
  }
  const served = deps.namespaces ?? [];
  if (served.length > 0 && !served.includes(namespace)) return 'ignored';
  if (request.dryRun) return 'dry-run';
  const identity = podIdentity(namespace, name);
  try {
    // A review of an older incarnation of a recreated pod must not release the new one's keys.
    const recorded = await deps.allocator.holderUid(identity);
    if (recorded !== undefined && meta?.uid !== undefined && meta.uid !== recorded)
      return 'ignored';
    const released = await deps.allocator.release(identity);
    deps.log.info(
      { pod: identity, released: released.length, uid: request.uid },
      'pod deleted: its keys cool',
    );
    return 'released';
  } catch (err) {
    // Never block a deletion: Kubernetes would retry or give up, and the pod goes anyway.
    deps.log.error({ err, pod: identity, uid: request.uid }, 'pod deletion not recorded');
    return 'error';
  }
}

/**
 * --webhook-client-ca: only a caller whose client certificate that CA signed (the API server,
 * configured with an AdmissionConfiguration kubeconfig) or an admin may report deletions.
 */
function requireApiServer(req: Request, res: Response): void {
  const socket = req.socket;
  if (socket instanceof TLSSocket && socket.authorized) return;
  if (callerOf(res).kind === 'admin') return;
  throw new PkmError(
    'FORBIDDEN',
    'the deletion webhook answers only the API server: present a client certificate signed by --webhook-client-ca',
  );
}
