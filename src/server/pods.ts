// /v1/pods/{pod}/keys: allocate, read and release one pod's keys.
import { Router } from 'express';
import { z } from 'zod';
import { parsePodName } from '../allocation/pod-name.js';
import { PkmError } from '../errors.js';
import { toHex } from '../keys/bls.js';
import type { AppDeps } from './app.js';
import { methodNotAllowed } from './http-errors.js';

const AllocateBody = z.object({ count: z.number() }).strict();

export function podRoutes(deps: Pick<AppDeps, 'allocator'>): Router {
  const router = Router();
  router
    .route('/v1/pods/:pod/keys')
    .post(async (req, res) => {
      const pod = parsePodName(req.params.pod);
      const body = AllocateBody.safeParse(req.body);
      if (!body.success) {
        throw new PkmError(
          'INVALID_BODY',
          `expected {"count": n}: ${body.error.issues.map((i) => i.message).join('; ')}`,
        );
      }
      const allocation = await deps.allocator.allocate(pod, body.data.count);
      // The body carries secret keys: no cache may keep it.
      res.setHeader('cache-control', 'no-store');
      res.json({
        pod: allocation.pod,
        keys: allocation.keys.map((k) => ({
          pubkey: k.pubkey,
          secretKey: toHex(k.secretKey),
          ...(k.path === undefined ? {} : { path: k.path }),
        })),
      });
    })
    .get(async (req, res) => {
      const pod = parsePodName(req.params.pod);
      res.json({ pod, pubkeys: await deps.allocator.podKeys(pod) });
    })
    .delete(async (req, res) => {
      const pod = parsePodName(req.params.pod);
      res.json({ pod, released: await deps.allocator.release(pod) });
    })
    .all(methodNotAllowed('GET', 'POST', 'DELETE'));
  return router;
}
