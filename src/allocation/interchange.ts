// Slashing protection that travels with a key (EIP-3076): each key's highest slot and epochs
// from an interchange, the merge of two (the stricter of both), and the fence a hand-off sets.
// The interchange itself, as it goes over the wire, is api/interchange.ts.
import type { Interchange, Protection } from '../api/interchange.js';
import { PkmError } from '../errors.js';

export type { Protection } from '../api/interchange.js';

function uint(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n))
    throw new PkmError('INVALID_INTERCHANGE', `slot or epoch ${text} is out of range`);
  return n;
}

const max = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

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

/**
 * Whether two histories hold the same bounds, field by field: a record read from the store
 * keeps its stored text's field order (records.ts), so their JSON texts may differ.
 */
export function sameProtection(a: Protection, b: Protection): boolean {
  return (
    a.lastBlockSlot === b.lastBlockSlot &&
    a.lastSourceEpoch === b.lastSourceEpoch &&
    a.lastTargetEpoch === b.lastTargetEpoch
  );
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
