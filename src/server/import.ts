// POST /v1/admin/keys/import: keystores and their history into a running server's pool
// (allocation/import-keys.ts). Admin only, checked before the body is read: the body may be
// megabytes, and each keystore costs a KDF run. Imports run one at a time, so two of them never
// hold two KDF pools' memory at once.
import express, { Router } from 'express';
import type { ImportSource } from '../allocation/import-keys.js';
import { largestKdf } from '../allocation/import-keys.js';
import { type KeysImportAnswer, KeysImportBody } from '../api/import.js';
import { parseInterchange } from '../api/interchange.js';
import { ROUTES } from '../api/paths.js';
import { PkmError } from '../errors.js';
import { KdfPool, poolSize } from '../keys/kdf-pool.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';

function parseBody(raw: unknown): KeysImportBody {
  const body = KeysImportBody.safeParse(raw);
  if (body.success) {
    if (body.data.passwords.length !== body.data.keystores.length)
      throw new PkmError(
        'INVALID_BODY',
        `${body.data.keystores.length} keystores but ${body.data.passwords.length} passwords: passwords[i] opens keystores[i]`,
      );
    return body.data;
  }
  const issue = body.error.issues[0];
  if (issue?.path[0] === 'slashing_protection') {
    // Its own code, with the field that is wrong, as an uploaded interchange gets.
    parseInterchange(
      raw !== null && typeof raw === 'object' && 'slashing_protection' in raw
        ? raw.slashing_protection
        : undefined,
    );
  }
  throw new PkmError(
    'INVALID_BODY',
    `expected {"keystores": [EIP-2335 keystore, ...], "passwords": ["...", ...], "slashing_protection"?: EIP-3076, "neverValidated"?: true}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
  );
}

export function importRoutes(
  deps: Pick<AppDeps, 'allocator' | 'log'> & { readonly auth: Auth },
): Router {
  const router = Router();
  let previous: Promise<unknown> = Promise.resolve();
  router
    .route(ROUTES.keysImport)
    .post(
      (_req, res, next) => {
        requireAdmin(deps.auth, res, 'a keystore import');
        next();
      },
      express.json({ limit: '16mb', strict: true, type: 'application/json' }),
      async (req, res) => {
        const body = parseBody(req.body);
        const sources: ImportSource[] = body.keystores.map((keystore, index) => ({
          name: `keystores[${index}]`,
          keystore,
          password: body.passwords[index] ?? '',
        }));
        const run = async () => {
          const pool = new KdfPool(poolSize(largestKdf(sources)));
          try {
            return await deps.allocator.importKeys(pool, sources, {
              neverValidated: body.neverValidated ?? false,
              interchange: body.slashing_protection,
            });
          } finally {
            await pool.close();
          }
        };
        const turn = previous.then(run, run);
        previous = turn.catch(() => undefined);
        const result = await turn;
        const index = new Map(sources.map((s, i) => [s.name, i]));
        const answer: KeysImportAnswer = {
          imported: result.imported,
          skipped: result.skipped,
          failed: result.failed.map((f) => ({
            index: index.get(f.source) ?? -1,
            code: f.code,
            message: f.message,
          })),
          protected: result.protected,
          protectionIgnored: result.protectionIgnored,
        };
        deps.log.info(
          {
            caller: describeCaller(callerOf(res)),
            imported: answer.imported.length,
            skipped: answer.skipped.length,
            failed: answer.failed.length,
          },
          'keystores imported',
        );
        res.json(answer);
      },
    )
    .all(methodNotAllowed('POST'));
  return router;
}
