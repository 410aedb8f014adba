// GET /v1/deposits: deposit_data.json for the store's keys, filtered by ?pod= and ?state=.
import { Router } from 'express';
import { ROUTES } from '../api/paths.js';
import { DepositsQuery, parseQuery } from '../api/queries.js';
import { depositEntries } from '../deposit/export.js';
import { type Auth, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

export function depositRoutes(deps: Pick<AppDeps, 'store'> & { readonly auth: Auth }): Router {
  const router = Router();
  router
    .route(ROUTES.deposits)
    .get(async (req, res) => {
      requireAdmin(deps.auth, res, 'deposit data');
      const { pod, state } = parseQuery(DepositsQuery, req.query);
      res.json(
        await depositEntries(deps.store, {
          ...(pod === undefined ? {} : { pod }),
          ...(state === undefined ? {} : { state }),
        }),
      );
    })
    .all(methodNotAllowed('GET'));
  return router;
}
