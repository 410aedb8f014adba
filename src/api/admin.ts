// The operator's routes on the wire: retire a key, rotate the KEK, read the audit log.
import { z } from 'zod';
import { StoredState } from './key-state.js';
import { PUBKEY } from './pubkey.js';

/** POST /v1/keys/{pubkey}/retire: why, for the audit log. */
export const RetireBody = z.object({ reason: z.string().max(200).optional() }).strict();

/** The answer to a retirement: the key's new state. */
export const RetiredAnswer = z.object({ pubkey: z.string().regex(PUBKEY), state: StoredState });

/** POST /v1/admin/kek-rotation: the new KEK travels as a path on the server, never over HTTP. */
export const KekRotationBody = z.object({ newKekFile: z.string().min(1).max(4096) }).strict();

export const KekRotationAnswer = z.object({
  from: z.string(),
  target: z.string(),
  migrated: z.number().int(),
});

/** GET /v1/events: the audit log, oldest first, and the cursor for the next read. */
export const EventsAnswer = z.object({
  events: z.array(
    z.object({
      seq: z.number().int(),
      at: z.number().int(),
      type: z.string(),
      pod: z.string().optional(),
      pubkeys: z.array(z.string()),
      detail: z.string().optional(),
    }),
  ),
  next: z.number().int(),
});
