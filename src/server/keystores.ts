// GET, POST and DELETE /eth/v1/keystores: the Keymanager API's local keystores over the pool
// (specs/keymanager-APIs/apis/local_keystores.yaml, flows/README.md), admin only, checked before
// a body is read. Errors carry the spec's ErrorResponse `message` beside pkm's `error`
// (http-errors.ts). Imports go through the import engine (allocation/import-keys.ts), fenced:
// the API has no "never validated" flag, and keys it brings often come from a running VC.
// Deletes retire keys no pod holds (allocation/keymanager-delete.ts) and never touch their
// slashing protection.
import type { Response } from 'express';
import express, { Router } from 'express';
import type { ImportResult, ImportSource } from '../allocation/import-keys.js';
import { type Interchange, parseInterchange, toInterchange } from '../api/interchange.js';
import {
  type DeleteKeysAnswer as DeleteKeysAnswerT,
  DeleteKeysBody,
  type ImportKeystoresAnswer as ImportKeystoresAnswerT,
  ImportKeystoresBody,
} from '../api/keymanager.js';
import { ROUTES } from '../api/paths.js';
import { PkmError, toPkmError } from '../errors.js';
import type { KeyRecord } from '../store/records.js';
import { type Auth, callerOf, describeCaller, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import type { RunImport } from './import-turns.js';

export interface KeystoreDeps extends Pick<AppDeps, 'allocator' | 'store' | 'log'> {
  readonly auth: Auth;
  readonly runImport: RunImport;
}

/** Keys a pod holds or runs: DELETE answers `error` for them, so the list says readonly. */
const HELD: ReadonlySet<KeyRecord['state']> = new Set(['allocated', 'reported', 'conflict']);

/**
 * The metadata root when the server knows none: DELETE then retires nothing and exports no
 * entry (keymanager-delete.ts noExport), but the spec requires valid metadata all the same.
 */
const NO_ROOT = `0x${'00'.repeat(32)}`;

/** Bad input before the batch starts: the spec's 400 (flows/README.md, steps 1 and 3). */
function badRequest(message: string): PkmError {
  return new PkmError('INVALID_BODY', message);
}

/** Waits for the socket to take more; false if the caller closed it first. */
function drained(res: Response): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (more: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(more);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/** listKeys, streamed: a pool of 100k keys is never held in memory as one answer. */
async function listKeys(deps: KeystoreDeps, res: Response): Promise<void> {
  res.status(200).type('application/json');
  res.write('{"data":[');
  let first = true;
  for await (const r of deps.store.keyRecords()) {
    // The pool's keys: those pkm holds a secret for and may still hand out or hands out now.
    if (r.secret === undefined || r.state === 'retired') continue;
    const entry = {
      validating_pubkey: r.pubkey,
      ...(r.path ? { derivation_path: r.path } : {}),
      readonly: HELD.has(r.state),
    };
    const ok = res.write(`${first ? '' : ','}${JSON.stringify(entry)}`);
    first = false;
    if (!ok && !(await drained(res))) return; // the caller went away: stop reading the store
  }
  res.end(']}');
}

/** The spec's slashing_protection, a JSON-encoded EIP-3076 interchange; 400 if unreadable. */
function readProtection(text: string | undefined): Interchange | undefined {
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw badRequest('slashing_protection is not JSON (an EIP-3076 interchange as a string)');
  }
  try {
    return parseInterchange(json);
  } catch (err) {
    throw badRequest(`slashing_protection: ${toPkmError(err).message}`);
  }
}

/**
 * EIP-2335 writes `pubkey` as bare hex, but keystores in the wild (the spec's own example,
 * types/keystore.yaml) carry a 0x prefix: it is dropped before the engine reads the keystore.
 * Harmless either way: the engine checks the decrypted secret's pubkey against this field.
 */
function withBarePubkey(keystore: unknown): unknown {
  if (keystore === null || typeof keystore !== 'object' || !('pubkey' in keystore)) return keystore;
  const { pubkey } = keystore;
  return typeof pubkey === 'string' && /^0x/i.test(pubkey)
    ? { ...keystore, pubkey: pubkey.slice(2) }
    : keystore;
}

/** One status per keystore, in order (ImportKeystoresResponse). */
function importStatuses(
  count: number,
  unreadable: ReadonlyMap<number, string>,
  result: ImportResult,
): ImportKeystoresAnswerT['data'] {
  const failed = new Map(result.failed.map((f) => [f.source, f.message]));
  const fresh = new Set(result.imported);
  return Array.from({ length: count }, (_, i) => {
    const name = `keystores[${i}]`;
    const message = unreadable.get(i) ?? failed.get(name);
    if (message !== undefined) return { status: 'error', message };
    const pubkey = result.opened.get(name);
    if (pubkey === undefined)
      return { status: 'error', message: 'the keystore was not imported (no reason given)' };
    // The first keystore of a new key imported it; any later one of the same key (or one the
    // pool held already) is a duplicate.
    if (fresh.delete(pubkey)) return { status: 'imported' };
    return { status: 'duplicate' };
  });
}

async function importKeystores(deps: KeystoreDeps, raw: unknown): Promise<ImportKeystoresAnswerT> {
  const parsed = ImportKeystoresBody.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(
      `expected {"keystores": ["<EIP-2335 keystore as JSON text>", ...], "passwords": ["...", ...], "slashing_protection"?: "<EIP-3076 as JSON text>"}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
    );
  }
  const body = parsed.data;
  if (body.keystores.length !== body.passwords.length)
    throw badRequest(
      `${body.keystores.length} keystores but ${body.passwords.length} passwords: passwords[i] opens keystores[i]`,
    );
  if (body.keystores.length === 0) return { data: [] };
  const interchange = readProtection(body.slashing_protection);
  const unreadable = new Map<number, string>();
  const sources: ImportSource[] = [];
  body.keystores.forEach((text, i) => {
    let keystore: unknown;
    try {
      keystore = JSON.parse(text);
    } catch {
      unreadable.set(i, `keystores[${i}] is not JSON (an EIP-2335 keystore as a string)`);
      return;
    }
    sources.push({
      name: `keystores[${i}]`,
      keystore: withBarePubkey(keystore),
      password: body.passwords[i] ?? '',
    });
  });
  let result: ImportResult;
  try {
    result = await deps.runImport(sources, { neverValidated: false, interchange });
  } catch (err) {
    const e = toPkmError(err);
    // History for another chain, or for none the server knows: the slashing data cannot be
    // read for this server, which the flow makes a 400; nothing was imported.
    if (['INTERCHANGE_MISMATCH', 'GENESIS_ROOT_UNKNOWN', 'INVALID_INTERCHANGE'].includes(e.code))
      throw badRequest(`slashing_protection: ${e.message}`);
    throw e;
  }
  return { data: importStatuses(body.keystores.length, unreadable, result) };
}

async function deleteKeys(deps: KeystoreDeps, raw: unknown): Promise<DeleteKeysAnswerT> {
  const parsed = DeleteKeysBody.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(
      `expected {"pubkeys": ["0x<96 hex>", ...]}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
    );
  }
  const pubkeys = parsed.data.pubkeys.map((pk) => pk.toLowerCase());
  const { outcomes, protection, genesisValidatorsRoot } = await deps.allocator.deleteKeys(pubkeys);
  // Only deleted and not_active keys, each once, in request order (flows/README.md, notes).
  const exported = [...protection];
  const interchange = toInterchange(genesisValidatorsRoot ?? NO_ROOT, exported);
  return {
    data: outcomes.map((o) =>
      o.message === undefined ? { status: o.status } : { status: o.status, message: o.message },
    ),
    slashing_protection: JSON.stringify(interchange),
  };
}

export function keystoreRoutes(deps: KeystoreDeps): Router {
  const router = Router();
  const admin =
    (what: string) => (_req: express.Request, res: Response, next: express.NextFunction) => {
      requireAdmin(deps.auth, res, what);
      next();
    };
  router
    .route(ROUTES.keystores)
    .get(admin('listing the keystores'), async (_req, res) => {
      res.setHeader('cache-control', 'no-store');
      await listKeys(deps, res);
    })
    .post(
      admin('importing keystores'),
      express.json({ limit: '16mb', strict: true, type: 'application/json' }),
      async (req, res) => {
        const answer = await importKeystores(deps, req.body);
        const count = (s: string) => answer.data.filter((d) => d.status === s).length;
        deps.log.info(
          {
            caller: describeCaller(callerOf(res)),
            imported: count('imported'),
            duplicate: count('duplicate'),
            error: count('error'),
          },
          'keystores imported through the Keymanager API (fenced)',
        );
        res.json(answer);
      },
    )
    .delete(
      admin('deleting keystores'),
      express.json({ limit: '2mb', strict: true, type: 'application/json' }),
      async (req, res) => {
        const answer = await deleteKeys(deps, req.body);
        deps.log.warn(
          {
            caller: describeCaller(callerOf(res)),
            deleted: answer.data.filter((d) => d.status === 'deleted').length,
            refused: answer.data.filter((d) => d.status === 'error').length,
          },
          'keystores deleted through the Keymanager API: retired, never handed out again',
        );
        res.setHeader('cache-control', 'no-store');
        res.json(answer);
      },
    )
    .all(methodNotAllowed('GET', 'POST', 'DELETE'));
  return router;
}
