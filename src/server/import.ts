// POST /v1/admin/keys/import: keystores and their history into a running server's pool
// (allocation/import-keys.ts). Admin only, checked before the body is read: the body may be
// megabytes, and each keystore costs a KDF run. Imports run one at a time (import-turns.ts).
import express, { Router } from 'express';
import type { ImportSource } from '../allocation/import-keys.js';
import { type KeysImportAnswer, KeysImportBody } from '../api/import.js';
import { parseInterchange } from '../api/interchange.js';
import { ROUTES } from '../api/paths.js';
import { PkmError } from '../errors.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import type { RunImport } from './import-turns.js';

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
  deps: Pick<AppDeps, 'log'> & { readonly auth: Auth; readonly runImport: RunImport },
): Router {
  const router = Router();
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
        const result = await deps.runImport(sources, {
          neverValidated: body.neverValidated ?? false,
          interchange: body.slashing_protection,
        });
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
