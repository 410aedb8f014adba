// POST /v1/pods/{pod}/heartbeat (and the namespaced form): `pkm agent` reports the keys its pod
// runs. Claims on keys the store does not record as the pod's need a proof of possession each
// (keys/proof.ts), over the challenge this server answers with: its boot token, the pod's
// `namespace/name`, the pubkey. Proofs are checked on a worker before the store is touched.
import express, { Router } from 'express';
import { HeartbeatBody, MAX_REPORTED } from '../api/heartbeat.js';
import { podTemplates } from '../api/paths.js';
import { PkmError } from '../errors.js';
import { proofMessage } from '../keys/proof.js';
import type { ProofVerifier } from '../keys/proof-verifier.js';
import type { KeyRecord } from '../store/records.js';
import { type Auth, callerOf } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import { podTarget, podUid, rateIdentity } from './pods.js';
import { RateLimiter } from './rate-limit.js';

/**
 * A pod holds at most --max-keys-per-pod keys; a heartbeat may list four times that, room for
 * keys handed out under a higher limit before it was lowered. Each listed key is read under
 * the store's one lock, so the cap bounds what one heartbeat holds up.
 */
const REPORTED_PER_KEY_LIMIT = 4;
/** Proofs one pod may have checked: --max-keys-per-pod at once, as many again per 10 minutes. */
const PROOF_REFILL_MINUTES = 10;

export function heartbeatRoutes(
  deps: Pick<
    AppDeps,
    | 'allocator'
    | 'store'
    | 'metrics'
    | 'namespaces'
    | 'bootToken'
    | 'heartbeats'
    | 'clock'
    | 'rateLimiter'
  > & { readonly auth: Auth; readonly proofs: ProofVerifier },
): Router {
  const router = Router();
  const max = deps.allocator.maxKeysPerPod;
  // Each check costs the worker ~50-150 ms: one pod's proofs must not hold up the others'.
  const proofBudget = new RateLimiter(
    { perMinute: max / PROOF_REFILL_MINUTES, burst: max },
    deps.clock,
  );
  const json = express.json({ limit: '1mb', strict: true, type: 'application/json' });
  const bootToken = deps.bootToken;
  for (const path of podTemplates('heartbeat')) {
    router
      .route(path)
      .post(json, async (req, res) => {
        const { id, shown, namespace, name } = podTarget(deps, req, res);
        deps.rateLimiter?.take(rateIdentity(callerOf(res), id));
        const body = HeartbeatBody.safeParse(req.body);
        if (!body.success)
          throw new PkmError(
            'INVALID_BODY',
            `expected {"pubkeys": ["0x…", …], "proofs"?: {"0x…": "0x…"}} (at most ${MAX_REPORTED} keys)`,
          );
        const pubkeys = [...new Set(body.data.pubkeys.map((pk) => pk.toLowerCase()))];
        if (pubkeys.length > REPORTED_PER_KEY_LIMIT * max)
          throw new PkmError(
            'INVALID_BODY',
            `at most ${REPORTED_PER_KEY_LIMIT * max} keys per heartbeat (${REPORTED_PER_KEY_LIMIT} x --max-keys-per-pod): a pod never holds more than ${max}`,
          );
        const proofs = Object.entries(body.data.proofs ?? {}).map(([pk, sig]) => ({
          pubkey: pk.toLowerCase(),
          signature: sig.toLowerCase(),
        }));
        if (proofs.length > max)
          throw new PkmError(
            'INVALID_BODY',
            `at most ${max} proofs per heartbeat (--max-keys-per-pod): a pod never runs more keys`,
          );
        const listed = new Set(pubkeys);
        const stray = proofs.filter((p) => !listed.has(p.pubkey));
        if (stray.length > 0)
          throw new PkmError(
            'INVALID_BODY',
            `proofs for keys the heartbeat does not report: ${stray.map((p) => p.pubkey).join(', ')}`,
          );
        const proven = new Set<string>();
        // Only proofs for claims are checked: a key the store records as the pod's needs none.
        const needed: typeof proofs = [];
        for (const p of proofs) if (!ownedBy(await deps.store.getKey(p.pubkey), id)) needed.push(p);
        const checked = needed.slice(0, proofBudget.takeUpTo(id, needed.length));
        deps.metrics.onProofs('unneeded', proofs.length - needed.length);
        deps.metrics.onProofs('over-budget', needed.length - checked.length);
        if (checked.length > 0 && bootToken !== undefined) {
          const challenge = `${namespace}/${name}`;
          const valid = await deps.proofs.verify(
            checked.map((p) => ({ ...p, message: proofMessage(bootToken, challenge, p.pubkey) })),
          );
          checked.forEach((p, i) => {
            if (valid[i] === true) proven.add(p.pubkey);
          });
          deps.metrics.onProofs('valid', proven.size);
          deps.metrics.onProofs('invalid', checked.length - proven.size);
        }
        const result = await deps.allocator.heartbeat(id, pubkeys, { uid: podUid(res), proven });
        deps.heartbeats?.set(id, deps.clock?.() ?? Date.now());
        res.json({ ...shown, bootToken, ...result });
      })
      .all(methodNotAllowed('POST'));
  }
  return router;
}

/** The store records the key as this pod's (held, reported, or cooling under its name). */
function ownedBy(r: KeyRecord | undefined, pod: string): boolean {
  return (
    r !== undefined &&
    r.pod === pod &&
    (r.state === 'allocated' || r.state === 'reported' || r.state === 'cooling')
  );
}
