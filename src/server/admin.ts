// POST /v1/admin/kek-rotation {"newKekFile": "/etc/pkm/kek-2"}: re-encrypts every secret under
// the KEK in that file (kek-rotation.ts) while the server runs. The KEK travels as a file
// path, never over HTTP. Restart with --kek-file pointing at the new file. On a database that
// several servers share, only a server left alone on it rotates (requireOnlyServer).
import express, { Router } from 'express';
import { rotateKek } from '../allocation/kek-rotation.js';
import { KekRotationBody } from '../api/admin.js';
import { ROUTES } from '../api/paths.js';
import { PkmError } from '../errors.js';
import type { StoreContract } from '../store/contract.js';
import { loadKek } from '../store/encryption.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

/**
 * A rotation re-seals under a new data key that only this server's key ring learns. Other
 * servers on the same database keep the old one and would go on sealing new keys with it,
 * keys no KEK opens once the rotation has ended: so it runs only where this server is alone.
 */
async function requireOnlyServer(store: StoreContract): Promise<void> {
  const servers = await store.serversRunning();
  if (servers === undefined || servers <= 1) return;
  throw new PkmError(
    'STORE_LOCKED',
    `${servers - 1} other pkm server${servers > 2 ? 's run' : ' runs'} on this database, whose key rings would keep the old data key: scale to one server and ask again, or stop every server and run pkm db rotate-kek --store … (nothing was changed)`,
  );
}

/** The new KEK, or INVALID_BODY naming the file: the caller's input, not the server's config. */
async function readNewKek(file: string): Promise<Buffer> {
  try {
    return (await loadKek('', file)).kek;
  } catch (err) {
    const why = err instanceof PkmError ? err.message.replace(/^--kek-file \S+ /, '') : 'error';
    throw new PkmError('INVALID_BODY', `newKekFile ${file}: ${why}`);
  }
}

export function adminRoutes(
  deps: Pick<AppDeps, 'store' | 'group' | 'log' | 'clock'> & { readonly auth: Auth },
): Router {
  const router = Router();
  let rotating = false;
  router
    .route(ROUTES.kekRotation)
    .post(
      express.json({ limit: '4kb', strict: true, type: 'application/json' }),
      async (req, res) => {
        requireAdmin(deps.auth, res, 'KEK rotation');
        const body = KekRotationBody.safeParse(req.body);
        if (!body.success)
          throw new PkmError('INVALID_BODY', 'expected {"newKekFile": "/path/to/new/kek"}');
        if (rotating) throw new PkmError('ROTATION_IN_PROGRESS', 'a KEK rotation is running');
        const newKek = await readNewKek(body.data.newKekFile);
        await requireOnlyServer(deps.store);
        rotating = true;
        try {
          const caller = describeCaller(callerOf(res));
          deps.log.warn({ caller }, 'KEK rotation started');
          const result = await rotateKek(deps.store, deps.group, newKek, { clock: deps.clock });
          deps.log.warn(
            { ...result, caller, kekFile: body.data.newKekFile },
            'KEK rotation finished: restart with --kek-file set to the new file',
          );
          res.json(result);
        } finally {
          rotating = false;
        }
      },
    )
    .all(methodNotAllowed('POST'));
  return router;
}
