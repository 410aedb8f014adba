// POST /v1/pods/{pod}/heartbeat (and the namespaced form): `pkm agent` reports the keys its pod
// runs. Claims on keys the store does not record as the pod's need a proof of possession each
// (keys/proof.ts), over the challenge this server answers with: its boot token, the pod's
// `namespace/name`, the pubkey. Proofs are checked on a worker before the store is touched.
import express, { Router } from 'express';
import { z } from 'zod';
import { PkmError } from '../errors.js';
import { proofMessage } from '../keys/proof.js';
import type { ProofVerifier } from '../keys/proof-verifier.js';
import type { AppDeps } from './app.js';
import { type Auth, callerOf } from './auth.js';
import { methodNotAllowed } from './http-errors.js';
import { podTarget, podUid, rateIdentity } from './pods.js';

const PUBKEY = /^0x[0-9a-fA-F]{96}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{192}$/;
const MAX_REPORTED = 4096;

const HeartbeatBody = z
  .object({
    pubkeys: z.array(z.string().regex(PUBKEY)).max(MAX_REPORTED),
    /** pubkey -> 0x-hex BLS signature over this server's challenge for that key. */
    proofs: z.record(z.string().regex(PUBKEY), z.string().regex(SIGNATURE)).optional(),
  })
  .strict();

export function heartbeatRoutes(
  deps: Pick<
    AppDeps,
    'allocator' | 'namespaces' | 'bootToken' | 'heartbeats' | 'clock' | 'rateLimiter'
  > & { readonly auth: Auth; readonly proofs: ProofVerifier },
): Router {
  const router = Router();
  const json = express.json({ limit: '1mb', strict: true, type: 'application/json' });
  const bootToken = deps.bootToken;
  for (const path of ['/v1/pods/:pod/heartbeat', '/v1/namespaces/:namespace/pods/:pod/heartbeat']) {
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
        const pubkeys = body.data.pubkeys.map((pk) => pk.toLowerCase());
        const proofs = Object.entries(body.data.proofs ?? {}).map(([pk, sig]) => ({
          pubkey: pk.toLowerCase(),
          signature: sig.toLowerCase(),
        }));
        const max = deps.allocator.maxKeysPerPod;
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
        if (proofs.length > 0 && bootToken !== undefined) {
          const challenge = `${namespace}/${name}`;
          const valid = await deps.proofs.verify(
            proofs.map((p) => ({ ...p, message: proofMessage(bootToken, challenge, p.pubkey) })),
          );
          proofs.forEach((p, i) => {
            if (valid[i] === true) proven.add(p.pubkey);
          });
        }
        const result = await deps.allocator.heartbeat(id, pubkeys, { uid: podUid(res), proven });
        deps.heartbeats?.set(id, deps.clock?.() ?? Date.now());
        res.json({ ...shown, bootToken, ...result });
      })
      .all(methodNotAllowed('POST'));
  }
  return router;
}
