// createApp(deps): the express app, with every dependency passed in, so a test can listen on
// port 0 over a temp store with an injected clock.
import express, { type NextFunction, type Request, type Response } from 'express';
import { ROUTES } from '../api/paths.js';
import type { ProbeAnswer } from '../api/probe.js';
import { PkmError } from '../errors.js';
import { ProofVerifier } from '../keys/proof-verifier.js';
import { VERSION } from '../version.js';
import { adminRoutes } from './admin.js';
import { assignmentsRoutes } from './assignments.js';
import { Auth, authenticate } from './auth.js';
import { depositRoutes } from './deposits.js';
import type { AppDeps } from './deps.js';
import { exitRoutes } from './exits.js';
import { heartbeatRoutes } from './heartbeat.js';
import { errorHandler, methodNotAllowed, notFound } from './http-errors.js';
import { importRoutes } from './import.js';
import { importTurns } from './import-turns.js';
import { keyRoutes } from './keys.js';
import { keystoreRoutes } from './keystores.js';
import { moveRoutes } from './moves.js';
import { openApiDocument } from './openapi.js';
import { podRoutes } from './pods.js';
import { requestObserver } from './request-log.js';
import { statusRoutes } from './status.js';
import { webhookRoutes } from './webhook.js';

export type { AppDeps } from './deps.js';

export function createApp(appDeps: AppDeps): express.Express {
  const deps = {
    ...appDeps,
    auth: appDeps.auth ?? new Auth({ adminTokens: [] }),
    proofs: appDeps.proofs ?? new ProofVerifier(),
  };
  const app = express();
  /** Why the server cannot serve allocations now, if it cannot. */
  const readiness = (): string | undefined =>
    !deps.store.isOpen || deps.isDraining?.()
      ? 'the store is not open'
      : (deps.storeHealth?.() ?? deps.funds?.());
  app.disable('x-powered-by');
  // Answers carry secrets or change with every allocation: no ETag to compute or cache by.
  app.set('etag', false);
  app.set('query parser', 'simple');
  const observe = requestObserver(deps);
  app.use((req: Request, res: Response, next: NextFunction) => {
    observe(req, res, () => ({
      route: req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched',
      pod: typeof req.params.pod === 'string' ? req.params.pod : undefined,
    }));
    next();
  });

  app.use(authenticate(deps.auth));

  // 415 for a body that is not UTF-8 JSON; a POST with no body falls through to validation.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    const length = req.headers['content-length'];
    const hasBody =
      req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    // Plain application/json, as every pkm client sends it, needs no parsing to pass.
    if (req.method === 'POST' && hasBody && req.headers['content-type'] !== 'application/json') {
      const charset = /;\s*charset="?([^";\s]+)/i
        .exec(req.get('content-type') ?? '')?.[1]
        ?.toLowerCase();
      if (!req.is('application/json') || (charset !== undefined && charset !== 'utf-8')) {
        throw new PkmError(
          'UNSUPPORTED_MEDIA_TYPE',
          'send the body as Content-Type: application/json (UTF-8)',
        );
      }
    }
    next();
  });

  app
    .route(ROUTES.health)
    .get((_req, res) => {
      const alive: ProbeAnswer = { status: 'ok' };
      res.json(alive);
    })
    .all(methodNotAllowed('GET'));
  app
    .route(ROUTES.ready)
    .get((_req, res) => {
      const notReady = readiness();
      if (notReady !== undefined) throw new PkmError('NOT_READY', notReady);
      const ready: ProbeAnswer = { status: 'ready' };
      res.json(ready);
    })
    .all(methodNotAllowed('GET'));
  app
    .route(ROUTES.metrics)
    .get(async (_req, res) => {
      res.setHeader('content-type', deps.metrics.registry.contentType);
      res.send(await deps.metrics.registry.metrics());
    })
    .all(methodNotAllowed('GET'));

  const api = JSON.stringify(openApiDocument(VERSION));
  app
    .route(ROUTES.openApi)
    .get((_req, res) => {
      res.type('application/json').send(api);
    })
    .all(methodNotAllowed('GET'));

  app.use(podRoutes(deps));
  app.use(heartbeatRoutes(deps));
  app.use(moveRoutes(deps));
  app.use(assignmentsRoutes(deps));
  app.use(depositRoutes(deps));
  app.use(webhookRoutes(deps));
  app.use(keyRoutes(deps));
  app.use(adminRoutes(deps));
  app.use(exitRoutes(deps));
  const runImport = importTurns(deps.allocator);
  app.use(importRoutes({ ...deps, runImport }));
  app.use(keystoreRoutes({ ...deps, runImport }));
  app.use(statusRoutes({ ...deps, readiness }));
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}
