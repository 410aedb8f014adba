// The EIP-3076 slashing-protection interchange (format version 5) on the wire: its schema, the
// parse and the minimal form pkm writes, and the answer to an upload. A key keeps the minimal
// form: its highest signed block slot, and its highest attestation source and target epochs.
// Importers refuse anything at or below those, which is all a new holder needs to never sign
// twice.
import { z } from 'zod';
import { PkmError } from '../errors.js';
import { podFields } from './pod-fields.js';
import { PUBKEY } from './pubkey.js';

/** Slashing protection a key carries (EIP-3076, minimal form): its highest slot and epochs. */
export const Protection = z
  .object({
    lastBlockSlot: z.number().int().nonnegative().optional(),
    lastSourceEpoch: z.number().int().nonnegative().optional(),
    lastTargetEpoch: z.number().int().nonnegative().optional(),
  })
  .strict();
export type Protection = z.infer<typeof Protection>;

const Uint = z.string().regex(/^\d+$/, 'a decimal string');
const Root = z.string().regex(/^0x[0-9a-fA-F]{64}$/, '0x and 64 hex digits');

export const Interchange = z
  .object({
    metadata: z
      .object({ interchange_format_version: z.literal('5'), genesis_validators_root: Root })
      .passthrough(),
    data: z.array(
      z
        .object({
          pubkey: z.string().regex(PUBKEY, 'a 0x pubkey of 48 bytes, lowercase hex'),
          signed_blocks: z.array(
            z.object({ slot: Uint, signing_root: Root.optional() }).passthrough(),
          ),
          signed_attestations: z.array(
            z
              .object({ source_epoch: Uint, target_epoch: Uint, signing_root: Root.optional() })
              .passthrough(),
          ),
        })
        .passthrough(),
    ),
  })
  .passthrough()
  .describe('EIP-3076 slashing-protection interchange, version 5');
export type Interchange = z.infer<typeof Interchange>;

/**
 * Why an upload left a listed key's history out (POST …/slashing-protection, `ignored`):
 *   - not-held: the key is in the store, and neither held nor cooling by the uploading pod;
 *   - conflict: two pods ran it; it is never handed out until an operator acts;
 *   - retired: it is never handed out again;
 *   - unknown: the store has no record of it.
 */
export const IgnoredReason = z
  .enum(['not-held', 'conflict', 'retired', 'unknown'])
  .describe(
    'not-held: another pod’s, or free; conflict: two pods ran it; retired; unknown: no such key',
  );
export type IgnoredReason = z.infer<typeof IgnoredReason>;
export const IgnoredKey = z.object({ pubkey: z.string(), reason: IgnoredReason });
export type IgnoredKey = z.infer<typeof IgnoredKey>;

/**
 * The answer to an upload. `pubkeys` lists the keys whose history was stored; `ignored` is
 * absent from servers older than per-key uploads (read as none ignored).
 */
export const ProtectionStored = z.object({
  ...podFields,
  pubkeys: z.array(z.string()).describe('keys whose history was stored (merged)'),
  ignored: z
    .array(IgnoredKey)
    .default([])
    .describe('keys the interchange lists whose history was not stored'),
});

/** What `pkm release` keeps of that answer (and prints). */
export type UploadAnswer = Pick<z.infer<typeof ProtectionStored>, 'pubkeys' | 'ignored'>;

export function parseInterchange(json: unknown): Interchange {
  const parsed = Interchange.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PkmError(
      'INVALID_INTERCHANGE',
      `not an EIP-3076 v5 interchange: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
    );
  }
  return parsed.data;
}

/** An interchange for the keys given, in the minimal form. */
export function toInterchange(
  genesisValidatorsRoot: string,
  keys: ReadonlyArray<[string, Protection]>,
): Interchange {
  return {
    metadata: { interchange_format_version: '5', genesis_validators_root: genesisValidatorsRoot },
    data: keys.map(([pubkey, p]) => ({
      pubkey,
      signed_blocks: p.lastBlockSlot === undefined ? [] : [{ slot: String(p.lastBlockSlot) }],
      signed_attestations:
        p.lastSourceEpoch === undefined || p.lastTargetEpoch === undefined
          ? []
          : [{ source_epoch: String(p.lastSourceEpoch), target_epoch: String(p.lastTargetEpoch) }],
    })),
  };
}
