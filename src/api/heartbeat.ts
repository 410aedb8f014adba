// POST …/heartbeat on the wire: the keys a pod reports running, with proofs of possession for
// claims, and the server's answer (DESIGN.md "Safety rules").
import { z } from 'zod';
import { podFields } from './pod-fields.js';
import { PUBKEY_ANY_CASE } from './pubkey.js';

/** Keys one heartbeat may list at most, before the per-server limit (heartbeat.ts). */
export const MAX_REPORTED = 4096;
/** A BLS signature: 0x and 96 bytes, either case. */
const SIGNATURE = /^0x[0-9a-fA-F]{192}$/;

export const HeartbeatBody = z
  .object({
    pubkeys: z.array(z.string().regex(PUBKEY_ANY_CASE)).max(MAX_REPORTED),
    proofs: z
      .record(z.string().regex(PUBKEY_ANY_CASE), z.string().regex(SIGNATURE))
      .optional()
      .describe(
        'Proofs of possession, for keys the store does not record as this pod’s: pubkey -> BLS signature (0x, 96 bytes) by that key over the UTF-8 text "pkm heartbeat proof of possession v1\\n<bootToken>\\n<namespace>/<pod>\\n<pubkey>", under the DST PKM_HEARTBEAT_POSSESSION_BLS12381G2_XMD:SHA-256_SSWU_RO_ (never Ethereum’s). At most --max-keys-per-pod, each for a key in pubkeys.',
      ),
  })
  .strict();
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;

const pubkeys = z.array(z.string());

export const HeartbeatAnswer = z.object({
  ...podFields,
  bootToken: z.string().min(1),
  reclaimed: pubkeys,
  conflicts: pubkeys,
  unknown: pubkeys,
  /** Servers before reported keys answer without it. */
  reported: pubkeys
    .default([])
    .describe(
      'keys the store had not as this pod’s, proven: recorded as reported by this pod, never handed out',
    ),
  stillCooling: pubkeys
    .optional()
    .describe('keys released by this pod without a confirmed stop: they stay cooling'),
  /** Servers before proofs of possession answer without it. */
  refused: pubkeys
    .default([])
    .describe(
      'claims without a valid proof of possession: nothing changed; send them again with proofs over this bootToken',
    ),
});
export type HeartbeatAnswer = z.infer<typeof HeartbeatAnswer>;
