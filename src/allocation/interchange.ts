// Slashing protection that travels with a key (EIP-3076 interchange, format version 5).
// A key keeps the minimal form: its highest signed block slot, and its highest attestation
// source and target epochs. Importers refuse anything at or below those, which is all a new
// holder needs to never sign twice.
import { z } from 'zod';
import { PUBKEY } from '../api/pubkey.js';
import { PkmError } from '../errors.js';
import type { Protection } from '../store/records.js';

export type { Protection } from '../store/records.js';

const Uint = z.string().regex(/^\d+$/, 'a decimal string');
const Root = z.string().regex(/^0x[0-9a-fA-F]{64}$/, '0x and 64 hex digits');

const Interchange = z
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
  .passthrough();
export type Interchange = z.infer<typeof Interchange>;

/**
 * Why an upload left a listed key's history out (POST …/slashing-protection, `ignored`):
 *   - not-held: the key is in the store, and neither held nor cooling by the uploading pod;
 *   - conflict: two pods ran it; it is never handed out until an operator acts;
 *   - retired: it is never handed out again;
 *   - unknown: the store has no record of it.
 */
export const IgnoredReason = z.enum(['not-held', 'conflict', 'retired', 'unknown']);
export type IgnoredReason = z.infer<typeof IgnoredReason>;
export const IgnoredKey = z.object({ pubkey: z.string(), reason: IgnoredReason });
export type IgnoredKey = z.infer<typeof IgnoredKey>;

/**
 * The answer to an upload, as a client reads it. `pubkeys` lists the keys whose history was
 * stored; `ignored` is absent from servers older than per-key uploads (read as none ignored).
 */
export const UploadAnswer = z.object({
  pubkeys: z.array(z.string()),
  ignored: z.array(IgnoredKey).default([]),
});
export type UploadAnswer = z.infer<typeof UploadAnswer>;

function uint(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n))
    throw new PkmError('INVALID_INTERCHANGE', `slot or epoch ${text} is out of range`);
  return n;
}

const max = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

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

/** Each pubkey's highest slot and epochs in an interchange. */
export function summarise(interchange: Interchange): Map<string, Protection> {
  const out = new Map<string, Protection>();
  for (const entry of interchange.data) {
    let p = out.get(entry.pubkey) ?? {};
    for (const b of entry.signed_blocks) p = merge(p, { lastBlockSlot: uint(b.slot) });
    for (const a of entry.signed_attestations) {
      p = merge(p, {
        lastSourceEpoch: uint(a.source_epoch),
        lastTargetEpoch: uint(a.target_epoch),
      });
    }
    out.set(entry.pubkey, p);
  }
  return out;
}

/** The stricter of two: the highest slot and epochs of both. */
export function merge(a: Protection, b: Protection): Protection {
  const slot = max(a.lastBlockSlot, b.lastBlockSlot);
  const source = max(a.lastSourceEpoch, b.lastSourceEpoch);
  const target = max(a.lastTargetEpoch, b.lastTargetEpoch);
  return {
    ...(slot === undefined ? {} : { lastBlockSlot: slot }),
    ...(source === undefined ? {} : { lastSourceEpoch: source }),
    ...(target === undefined ? {} : { lastTargetEpoch: target }),
  };
}

const SECONDS_PER_SLOT = 12;
const SLOTS_PER_EPOCH = 32;

/**
 * A fence at `now`: no block at or below the current slot, no attestation at or below the
 * current epoch. Nothing signed before a hand-off can be signed again by the new holder.
 */
export function fenceAt(nowMs: number, genesisTime: number): Protection {
  const slot = Math.max(0, Math.floor((nowMs / 1000 - genesisTime) / SECONDS_PER_SLOT));
  const epoch = Math.floor(slot / SLOTS_PER_EPOCH);
  return { lastBlockSlot: slot, lastSourceEpoch: epoch, lastTargetEpoch: epoch };
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
