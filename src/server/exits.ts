// POST /eth/v1/validator/{pubkey}/voluntary_exit[?epoch=N]: the Keymanager API's
// signVoluntaryExit (specs/keymanager-APIs/apis/voluntary_exit.yaml) over the pool, admin only.
// The exit is signed over the EIP-7044 domain (deposit/exit.ts), so it stays valid for good:
// whoever holds it can exit the validator, which is why it takes the admin token.
import express, { Router } from 'express';
import { VoluntaryExitQuery } from '../api/exits.js';
import { ROUTES } from '../api/paths.js';
import { PUBKEY_ANY_CASE } from '../api/pubkey.js';
import type { BeaconGate } from '../beacon/liveness.js';
import type { SignedVoluntaryExitJson } from '../deposit/exit.js';
import { currentEpoch, type ExitChain } from '../deposit/exit-chain.js';
import { PkmError } from '../errors.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

export interface ExitDeps extends Pick<AppDeps, 'store' | 'clock' | 'log'> {
  readonly auth: Auth;
  /** What exits are signed over (--network); absent: every exit is refused. */
  readonly exitChain?: ExitChain | undefined;
  /** --beacon-url: where a key's validator index is looked up. */
  readonly liveness?: BeaconGate | undefined;
}

/** The key's index: as the caller gave it, else from the beacon node, else a coded refusal. */
async function indexOf(deps: ExitDeps, pubkey: string, given: string | undefined): Promise<bigint> {
  if (given !== undefined) return BigInt(given);
  if (deps.liveness === undefined)
    throw new PkmError(
      'VALIDATOR_INDEX_UNKNOWN',
      `no validator index is known for ${pubkey}: pass ?validator_index=N, or start the server with --beacon-url`,
    );
  const found = (await deps.liveness.indices([pubkey], deps.clock())).get(pubkey);
  if (found === undefined)
    throw new PkmError(
      'VALIDATOR_INDEX_UNKNOWN',
      `${pubkey} is not a validator in the beacon node's head state (not deposited, or its deposit is still pending)`,
    );
  return BigInt(found);
}

export function exitRoutes(deps: ExitDeps): Router {
  const router = Router();
  router
    .route(ROUTES.voluntaryExit)
    .post(
      express.json({ limit: '4kb', strict: true, type: 'application/json' }),
      async (req, res) => {
        requireAdmin(deps.auth, res, 'signing a voluntary exit');
        const raw = String(req.params.pubkey);
        if (!PUBKEY_ANY_CASE.test(raw))
          throw new PkmError('INVALID_PUBKEY', 'a pubkey is 0x and 96 hex digits (48 bytes)');
        const pubkey = raw.toLowerCase();
        const query = VoluntaryExitQuery.safeParse(req.query);
        if (!query.success)
          throw new PkmError(
            'INVALID_QUERY',
            'the query takes epoch and validator_index, each a uint64 in decimal',
          );
        const record = await deps.store.getKey(pubkey);
        // A retired key signs nothing more; a key known by its pubkey alone has no secret here.
        if (record === undefined || record.secret === undefined || record.state === 'retired')
          throw new PkmError(
            'KEY_NOT_FOUND',
            record?.state === 'retired'
              ? `${pubkey} is retired: pkm signs nothing more with it`
              : `no key ${pubkey} with its secret in this server's pool`,
          );
        const chain = deps.exitChain;
        if (chain === undefined)
          throw new PkmError(
            'EXIT_CHAIN_UNKNOWN',
            'exits are signed over the Capella fork version and genesis_validators_root of the chain (EIP-7044): start the server with --network mainnet|hoodi|sepolia|holesky',
          );
        // The spec: "Defaults to the current epoch if not set." Without a genesis time there is
        // no current epoch to default to: the caller says which.
        const epoch = query.data.epoch ?? currentEpoch(chain, deps.clock())?.toString();
        if (epoch === undefined)
          throw new PkmError(
            'INVALID_QUERY',
            `the server does not know ${chain.name}'s genesis time: pass ?epoch=N (0 is valid at any epoch)`,
          );
        const validatorIndex = await indexOf(deps, pubkey, query.data.validator_index);
        // The signing's SSZ is loaded at the first exit, not at every start (issue 17, point 5).
        const { signVoluntaryExit } = await import('../deposit/exit.js');
        const secretKey = deps.store.secrets.open(record.secret, pubkey);
        let data: SignedVoluntaryExitJson;
        try {
          data = signVoluntaryExit(
            { secretKey, pubkey },
            { epoch: BigInt(epoch), validatorIndex },
            chain,
          );
        } finally {
          secretKey.fill(0);
        }
        deps.log.warn(
          {
            pubkey,
            epoch,
            validatorIndex: validatorIndex.toString(),
            caller: describeCaller(callerOf(res)),
          },
          'voluntary exit signed: whoever holds it can exit this validator',
        );
        res.setHeader('cache-control', 'no-store');
        res.json({ data });
      },
    )
    .all(methodNotAllowed('POST'));
  return router;
}
