// POST /v1/admin/keys/import on the wire: EIP-2335 keystores with their passwords, and their
// EIP-3076 history, into the pool of a running server (the offline twin is `pkm keys import`).
import { z } from 'zod';
import { Interchange } from './interchange.js';
import { PUBKEY } from './pubkey.js';

/** Most keystores in one request: each costs a KDF run (EIP-2335 scrypt: ~1 s, 256 MiB). */
export const MAX_IMPORT_KEYSTORES = 1000;

export const KeysImportBody = z
  .object({
    keystores: z
      .array(z.record(z.string(), z.unknown()))
      .min(1)
      .max(MAX_IMPORT_KEYSTORES)
      .describe('EIP-2335 keystores (version 4, scrypt or pbkdf2), each checked on its own'),
    passwords: z
      .array(z.string().max(4096))
      .min(1)
      .max(MAX_IMPORT_KEYSTORES)
      .describe('passwords[i] opens keystores[i]'),
    slashing_protection: Interchange.optional().describe(
      "EIP-3076 history of these keys, for the server's genesis_validators_root",
    ),
    neverValidated: z
      .boolean()
      .optional()
      .describe('the keys never ran anywhere: they enter free instead of fenced'),
  })
  .strict();
export type KeysImportBody = z.infer<typeof KeysImportBody>;

const Pubkey = z.string().regex(PUBKEY);

export const KeysImportAnswer = z.object({
  imported: z.array(Pubkey).describe('keys new to the pool (fenced, or free if never validated)'),
  skipped: z.array(Pubkey).describe('keys the pool held already with the same secret'),
  failed: z
    .array(
      z.object({
        index: z.number().int().nonnegative().describe('the keystore’s place in `keystores`'),
        code: z.string(),
        message: z.string(),
      }),
    )
    .describe('keystores refused, each with nothing of it stored'),
  protected: z.array(Pubkey).describe('keys whose interchange entry was merged'),
  protectionIgnored: z.array(Pubkey).describe('interchange entries for keys not imported'),
});
export type KeysImportAnswer = z.infer<typeof KeysImportAnswer>;
