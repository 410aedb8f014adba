// GET, POST and DELETE /eth/v1/keystores: the Keymanager API's local keystores
// (specs/keymanager-APIs/apis/local_keystores.yaml) over the pool. The spec sends each keystore
// and the slashing protection as JSON-ENCODED STRINGS (types/keystore.yaml,
// types/slashing_protection.yaml), not as objects: the schemas below say so, and the route
// parses each string on its own.
import { z } from 'zod';
import { PUBKEY_ANY_CASE } from './pubkey.js';

/** Most keystores in one import: each costs a KDF run (EIP-2335 scrypt: ~1 s, 256 MiB). */
export const MAX_KEYSTORES = 1000;
/** Most pubkeys in one DELETE. */
export const MAX_DELETE = 10_000;

/** types/public_key.yaml: either case (the spec: "case insensitive"). */
const Pubkey = z.string().regex(PUBKEY_ANY_CASE);

/** listKeys' 200: every key of the pool; `readonly` ones cannot be deleted (a pod holds them). */
export const ListKeysAnswer = z.object({
  data: z.array(
    z.object({
      validating_pubkey: z.string(),
      derivation_path: z.string().optional(),
      readonly: z.boolean().optional(),
    }),
  ),
});
export type ListKeysAnswer = z.infer<typeof ListKeysAnswer>;

export const ImportKeystoresBody = z.object({
  keystores: z
    .array(z.string().max(64 * 1024))
    .max(MAX_KEYSTORES)
    .describe('each an EIP-2335 keystore, JSON-encoded as a string'),
  passwords: z
    .array(z.string().max(4096))
    .max(MAX_KEYSTORES)
    .describe('passwords[i] opens keystores[i]'),
  slashing_protection: z
    .string()
    .optional()
    .describe('EIP-3076 interchange, JSON-encoded as a string'),
});
export type ImportKeystoresBody = z.infer<typeof ImportKeystoresBody>;

export const ImportStatus = z.enum(['imported', 'duplicate', 'error']);
export const ImportKeystoresAnswer = z.object({
  data: z.array(z.object({ status: ImportStatus, message: z.string().optional() })),
});
export type ImportKeystoresAnswer = z.infer<typeof ImportKeystoresAnswer>;

export const DeleteKeysBody = z.object({ pubkeys: z.array(Pubkey).max(MAX_DELETE) });
export type DeleteKeysBody = z.infer<typeof DeleteKeysBody>;

export const DeleteStatus = z.enum(['deleted', 'not_active', 'not_found', 'error']);
export type DeleteStatus = z.infer<typeof DeleteStatus>;
export const DeleteKeysAnswer = z.object({
  data: z.array(z.object({ status: DeleteStatus, message: z.string().optional() })),
  slashing_protection: z
    .string()
    .describe('EIP-3076 interchange (JSON-encoded) for the deleted and not_active keys only'),
});
export type DeleteKeysAnswer = z.infer<typeof DeleteKeysAnswer>;
