// GET /v1/status (admin): what `pkm status` shows an operator. Counts, whether the pool can
// serve the next pod, recent conflicts and deposits (from the audit log), and readiness.
import { Router } from 'express';
import { stateCounts } from '../allocation/counts.js';
import { ROUTES } from '../api/paths.js';
import type { AuditEvent } from '../store/audit.js';
import { type Auth, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

const RECENT = 10;

const brief = (e: AuditEvent) => ({
  at: new Date(e.at).toISOString(),
  ...(e.pod === undefined ? {} : { pod: e.pod }),
  pubkeys: e.pubkeys,
  ...(e.detail === undefined ? {} : { detail: e.detail }),
});

export function statusRoutes(
  deps: Pick<AppDeps, 'store' | 'clock' | 'reuseDelayMs' | 'maxTotalKeys' | 'newKeys'> & {
    readonly auth: Auth;
    readonly readiness: () => string | undefined;
  },
): Router {
  const router = Router();
  router
    .route(ROUTES.status)
    .get(async (_req, res) => {
      requireAdmin(deps.auth, res, 'the status');
      const notReady = deps.readiness();
      const counts = await stateCounts(deps.store, deps.clock(), deps.reuseDelayMs);
      const newKeys = deps.newKeys ?? 'always';
      const canCreate =
        newKeys === 'always' &&
        (deps.maxTotalKeys === undefined || counts.total < deps.maxTotalKeys);
      const [conflicts, deposits, fences, reported] = await Promise.all([
        deps.store.lastEvents(new Set(['conflict']), RECENT),
        deps.store.lastEvents(new Set(['deposit']), RECENT),
        deps.store.lastEvents(new Set(['fence']), RECENT),
        deps.store.lastEvents(new Set(['report']), RECENT),
      ]);
      res.json({
        ready: notReady === undefined,
        ...(notReady === undefined ? {} : { notReady }),
        counts: { ...counts, pods: deps.store.storedCounts().pods },
        pool: {
          free: counts.free,
          cooling: counts.cooling,
          canCreate,
          // Why canCreate is false with room left: the operator chose imports only.
          newKeys,
          // The next pod gets keys without waiting: free ones, or new ones.
          healthy: counts.free > 0 || canCreate,
        },
        conflicts: conflicts.map(brief),
        // Keys whose holder's stop was not confirmed, and keys pods run that the store lost.
        fences: fences.map(brief),
        reported: reported.map(brief),
        lastDeposits: deposits.map(brief),
      });
    })
    .all(methodNotAllowed('GET'));
  return router;
}
