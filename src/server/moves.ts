// Live key moves over HTTP (issue 16; allocation/moves.ts has the protocol):
//   POST /v1/moves, POST /v1/rebalance          (admin) mark keys leaving for other pods;
//   POST …/pods/{pod}/assignment                (the pod, or admin) what its VC is to run, with
//                                               the secrets of the keys it lacks;
//   POST …/pods/{pod}/removals                  (the pod, or admin) what its VC deleted.
// PUT …/pods/{pod}/keys (the count) is in pods.ts, beside the pod's other key routes.
import express, { type Request, type Response, Router } from 'express';
import { parseSelector } from '../allocation/rebalance-plan.js';
import type { RemovalReport } from '../allocation/removal.js';
import { toInterchange } from '../api/interchange.js';
import {
  type AssignmentAnswer as AssignmentAnswerT,
  AssignmentBody,
  MoveBody,
  RebalanceBody,
  RemovalsBody,
} from '../api/moves.js';
import { parseNamespace, parsePodName, podIdentity } from '../api/names.js';
import { podTemplates, ROUTES } from '../api/paths.js';
import { PkmError } from '../errors.js';
import { toHex } from '../keys/bls.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import { podTarget, podUid, rateIdentity } from './pods.js';

type MovesDeps = Pick<AppDeps, 'moves' | 'namespaces' | 'log' | 'rateLimiter'> & {
  readonly auth: Auth;
};

/** An agent's lists are bounded by MAX_LISTED; a removal report carries an interchange. */
const json = express.json({ limit: '1mb', strict: true, type: 'application/json' });
const reportJson = express.json({ limit: '20mb', strict: true, type: 'application/json' });

function invalid(
  expected: string,
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
) {
  const issue = issues[0];
  return new PkmError(
    'INVALID_BODY',
    `expected ${expected}: ${issue?.path.map(String).join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
  );
}

/** A pod's identity in a body (`name`, or `namespace/name`), checked as a path's would be. */
function podId(deps: MovesDeps, raw: string): string {
  const slash = raw.indexOf('/');
  const namespace = slash < 0 ? undefined : parseNamespace(raw.slice(0, slash));
  const name = parsePodName(slash < 0 ? raw : raw.slice(slash + 1));
  const served = deps.namespaces ?? [];
  const ns = namespace ?? 'default';
  if (served.length > 0 && !served.includes(ns))
    throw new PkmError(
      'NAMESPACE_NOT_SERVED',
      `this server serves namespaces ${served.join(', ')}, not ${ns} (--namespace)`,
    );
  return podIdentity(namespace, name);
}

/** Every pubkey once, in lowercase; a repeated one is bad input (each is one key's status). */
function distinct<T extends { pubkey: string }>(items: readonly T[]): T[] {
  const seen = new Set<string>();
  return items.map((item) => {
    const pubkey = item.pubkey.toLowerCase();
    if (seen.has(pubkey))
      throw new PkmError('INVALID_BODY', `${pubkey} is listed twice: one status per key`);
    seen.add(pubkey);
    return { ...item, pubkey };
  });
}

function slashingProtectionOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new PkmError(
      'INVALID_INTERCHANGE',
      'slashing_protection is not JSON (an EIP-3076 interchange as a string, as the VC returned it)',
    );
  }
}

export function moveRoutes(deps: MovesDeps): Router {
  const router = Router();
  const admin = (what: string) => (_req: Request, res: Response, next: express.NextFunction) => {
    requireAdmin(deps.auth, res, what);
    next();
  };

  router
    .route(ROUTES.moves)
    .post(admin('moving keys'), json, async (req, res) => {
      const body = MoveBody.safeParse(req.body);
      if (!body.success)
        throw invalid('{"from": "pod", "to": "pod", "count": n}', body.error.issues);
      const from = podId(deps, body.data.from);
      const to = podId(deps, body.data.to);
      const result = await deps.moves.move(from, to, body.data.count);
      deps.log.warn(
        { caller: describeCaller(callerOf(res)), from, to, keys: result.keys.length },
        'keys leaving a pod for another: each moves once its VC deleted it',
      );
      res.json(result);
    })
    .all(methodNotAllowed('POST'));

  router
    .route(ROUTES.rebalance)
    .post(admin('rebalancing keys'), json, async (req, res) => {
      const body = RebalanceBody.safeParse(req.body);
      if (!body.success) throw invalid('{"selector": "validator-*"}', body.error.issues);
      const selector = parseSelector(body.data.selector);
      // A plain name selects that pod even if the store does not know it: it must be a pod
      // identity this server serves, checked as a move's `from` and `to` are.
      const names = selector.names.map((n) => podId(deps, n));
      const result = await deps.moves.rebalance({ ...selector, names });
      deps.log.warn(
        {
          caller: describeCaller(callerOf(res)),
          selector: body.data.selector,
          moves: result.moves.map((m) => ({ from: m.from, to: m.to, keys: m.keys.length })),
        },
        'rebalance: keys leaving pods for others',
      );
      res.json(result);
    })
    .all(methodNotAllowed('POST'));

  for (const path of podTemplates('assignment')) {
    router
      .route(path)
      .post(json, async (req, res) => {
        const { id, shown } = podTarget(deps, req, res);
        deps.rateLimiter?.take(rateIdentity(callerOf(res), id));
        const body = AssignmentBody.safeParse(req.body);
        if (!body.success) throw invalid('{"have": ["0x…", …]}', body.error.issues);
        const have = new Set(body.data.have.map((pk) => pk.toLowerCase()));
        // The token's UID: another incarnation's keys are fenced, never handed out (moves.ts).
        const view = await deps.moves.assignment(id, have, podUid(res));
        const root = view.genesisValidatorsRoot;
        const answer: AssignmentAnswerT = {
          ...shown,
          keys: view.keys.map((k) => ({
            pubkey: k.pubkey,
            ...(k.leaving === undefined ? {} : { leaving: k.leaving }),
            ...(k.settings === undefined ? {} : { settings: k.settings }),
            ...(k.key === undefined
              ? {}
              : {
                  secretKey: toHex(k.key.secretKey),
                  ...(k.key.path === undefined ? {} : { path: k.key.path }),
                  // EIP-3076: what the VC must import with the key, before it signs.
                  ...(k.key.protection && root
                    ? { slashingProtection: toInterchange(root, [[k.pubkey, k.key.protection]]) }
                    : {}),
                }),
          })),
        };
        // The body may carry secret keys: no cache may keep it.
        res.setHeader('cache-control', 'no-store');
        res.json(answer);
      })
      .all(methodNotAllowed('POST'));
  }

  for (const path of podTemplates('removals')) {
    router
      .route(path)
      .post(
        // The caller is checked (and counted) before its body of up to 20 MB is read: an
        // anonymous or foreign caller's report costs no parsing.
        (req, res, next) => {
          const { id } = podTarget(deps, req, res);
          deps.rateLimiter?.take(rateIdentity(callerOf(res), id));
          next();
        },
        reportJson,
        async (req, res) => {
          const { id, shown } = podTarget(deps, req, res);
          const body = RemovalsBody.safeParse(req.body);
          if (!body.success)
            throw invalid(
              '{"keys": [{"pubkey", "status": "deleted|not_active|not_found|error", "settings"?}], "slashing_protection": "<the VC\'s answer>"}',
              body.error.issues,
            );
          const reports: RemovalReport[] = distinct(body.data.keys);
          const results = await deps.moves.recordRemovals(
            id,
            reports,
            slashingProtectionOf(body.data.slashing_protection),
            podUid(res),
          );
          const count = (o: string) => results.filter((r) => r.outcome === o).length;
          deps.log.info(
            {
              pod: id,
              moved: count('moved'),
              freed: count('freed'),
              cooling: count('cooling'),
              leaving: count('leaving'),
            },
            'removals recorded',
          );
          for (const r of results)
            if (r.outcome === 'cooling' || r.outcome === 'leaving')
              deps.log.warn(
                { pod: id, pubkey: r.pubkey, outcome: r.outcome, why: r.why },
                'removal without proof',
              );
          res.json({ ...shown, keys: results });
        },
      )
      .all(methodNotAllowed('POST'));
  }
  return router;
}
