// GET /v1/deposits: deposit_data.json for the store's keys, filtered by ?pod= and ?state=.
import { Router } from 'express';
import { StoredState } from '../api/key-state.js';
import { parsePodName } from '../api/names.js';
import { ROUTES } from '../api/paths.js';
import { depositEntries } from '../deposit/export.js';
import { PkmError } from '../errors.js';
import { type Auth, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

export function depositRoutes(deps: Pick<AppDeps, 'store'> & { readonly auth: Auth }): Router {
  const router = Router();
  router
    .route(ROUTES.deposits)
    .get(async (req, res) => {
      requireAdmin(deps.auth, res, 'deposit data');
      const { pod, state, ...rest } = req.query;
      const unknown = Object.keys(rest);
      if (unknown.length > 0)
        throw new PkmError(
          'INVALID_QUERY',
          `unknown query parameter ${unknown.join(', ')}; use pod or state`,
        );
      const parsedState = state === undefined ? undefined : StoredState.safeParse(state);
      if (parsedState && !parsedState.success) {
        throw new PkmError('INVALID_QUERY', `state is one of ${StoredState.options.join(', ')}`);
      }
      res.json(
        await depositEntries(deps.store, {
          ...(pod === undefined ? {} : { pod: parsePodName(pod) }),
          ...(parsedState?.success ? { state: parsedState.data } : {}),
        }),
      );
    })
    .all(methodNotAllowed('GET'));
  return router;
}
