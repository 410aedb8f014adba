// POST /v1/keys/{pubkey}/retire: a key is never handed out again.
// GET /v1/events?since=&limit=: the audit log, oldest first, with the cursor for the next read.
import express, { Router } from 'express';
import { RetireBody } from '../api/admin.js';
import { ROUTES } from '../api/paths.js';
import { PUBKEY } from '../api/pubkey.js';
import { EventsQuery, parseQuery } from '../api/queries.js';
import { PkmError } from '../errors.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

export function keyRoutes(
  deps: Pick<AppDeps, 'allocator' | 'store' | 'log'> & { readonly auth: Auth },
): Router {
  const router = Router();
  router
    .route(ROUTES.retireKey)
    .post(
      express.json({ limit: '4kb', strict: true, type: 'application/json' }),
      async (req, res) => {
        requireAdmin(deps.auth, res, 'retiring a key');
        const pubkey = String(req.params.pubkey).toLowerCase();
        if (!PUBKEY.test(pubkey))
          throw new PkmError('INVALID_PUBKEY', 'a pubkey is 0x and 96 hex digits (48 bytes)');
        const body = RetireBody.safeParse(req.body ?? {});
        if (!body.success)
          throw new PkmError('INVALID_BODY', 'expected {"reason"?: "at most 200 characters"}');
        const reason = body.data.reason ?? 'retired by an operator';
        const record = await deps.allocator.retire(pubkey, reason);
        deps.log.warn(
          { pubkey, reason, caller: describeCaller(callerOf(res)) },
          'key retired: it is never handed out again',
        );
        res.json({ pubkey, state: record.state });
      },
    )
    .all(methodNotAllowed('POST'));

  router
    .route(ROUTES.events)
    .get(async (req, res) => {
      requireAdmin(deps.auth, res, 'the events log');
      const { since, limit } = parseQuery(EventsQuery, req.query);
      // As before, 0 reads as 1 rather than being refused (the document says so).
      const events = await deps.store.events(since, Math.max(1, limit));
      const last = events.at(-1);
      res.json({ events, next: last === undefined ? since : last.seq + 1 });
    })
    .all(methodNotAllowed('GET'));
  return router;
}
