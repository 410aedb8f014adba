// Live key moves on the wire (issue 16): a running pod's count (PUT …/keys), a move and a
// rebalance (admin), and what a pod's agent asks and reports (…/assignment, …/removals).
import { z } from 'zod';
import { Interchange } from './interchange.js';
import { KeySettings } from './key-settings.js';
import { DeleteStatus } from './keymanager.js';
import { podFields } from './pod-fields.js';
import { PUBKEY, PUBKEY_ANY_CASE } from './pubkey.js';

/** Most keys one agent request lists (a pod holds at most --max-keys-per-pod). */
export const MAX_LISTED = 4096;

const Pubkey = z.string().regex(PUBKEY);
const AnyPubkey = z.string().regex(PUBKEY_ANY_CASE);

/** PUT …/keys. The count's range (0 to --max-keys-per-pod) is the server's COUNT_OUT_OF_RANGE. */
export const SetCountBody = z
  .object({ count: z.number().meta({ type: 'integer', minimum: 0 }) })
  .strict();

export const SetCountAnswer = z.object({
  ...podFields,
  keys: z.array(Pubkey).describe('the keys the pod is to run'),
  leaving: z.array(Pubkey).describe('keys its agent is to delete from its VC; held until then'),
});
export type SetCountAnswer = z.infer<typeof SetCountAnswer>;

/** A pod as the store names it: `name` in the default namespace, else `namespace/name`. */
const PodId = z.string().min(1).max(317).describe('name, or namespace/name');

/** POST /v1/moves. */
export const MoveBody = z
  .object({
    from: PodId,
    to: PodId,
    count: z.number().meta({ type: 'integer', minimum: 1 }),
  })
  .strict();

export const MoveAnswer = z.object({
  from: z.string(),
  to: z.string(),
  keys: z.array(Pubkey).describe('the keys now leaving `from` for `to`'),
});
export type MoveAnswer = z.infer<typeof MoveAnswer>;

/** POST /v1/rebalance. */
export const RebalanceBody = z
  .object({
    selector: z
      .string()
      .min(1)
      .max(4096)
      .describe('comma-separated pod names or patterns, "*" for any run of characters'),
  })
  .strict();

export const RebalanceAnswer = z.object({ moves: z.array(MoveAnswer) });
export type RebalanceAnswer = z.infer<typeof RebalanceAnswer>;

/** POST …/assignment: the keys the pod's VC has now. */
export const AssignmentBody = z.object({ have: z.array(AnyPubkey).max(MAX_LISTED) }).strict();

export const AssignedKeyWire = z.object({
  pubkey: Pubkey,
  leaving: z
    .object({ to: z.string().optional() })
    .optional()
    .describe('the server takes it back (for `to`, a move): delete it from the VC, then report'),
  settings: KeySettings.optional(),
  secretKey: z
    .string()
    .regex(/^0x[0-9a-f]{64}$/)
    .optional()
    .describe('only for a key to run that the VC does not have'),
  path: z.string().optional(),
  slashingProtection: Interchange.optional(),
});

export const AssignmentAnswer = z.object({
  ...podFields,
  keys: z.array(AssignedKeyWire),
});
export type AssignmentAnswer = z.infer<typeof AssignmentAnswer>;

/** POST …/removals: what DELETE /eth/v1/keystores answered, and the settings read before. */
export const RemovalsBody = z
  .object({
    keys: z
      .array(
        z
          .object({ pubkey: AnyPubkey, status: DeleteStatus, settings: KeySettings.optional() })
          .strict(),
      )
      .min(1)
      .max(MAX_LISTED),
    slashing_protection: z
      .string()
      .max(16 * 1024 * 1024)
      .describe(
        "the VC's DeleteKeysResponse slashing_protection, as it came (JSON-encoded EIP-3076)",
      ),
  })
  .strict();

export const RemovalOutcome = z
  .enum(['moved', 'freed', 'cooling', 'leaving', 'kept', 'not-held'])
  .describe(
    'moved: with proof, to `to`; freed: with proof, to the pool; cooling: without proof (why); leaving: not deleted (why), nothing changed; kept: not leaving, still the pod’s; not-held: not the pod’s',
  );

export const RemovalsAnswer = z.object({
  ...podFields,
  keys: z.array(
    z.object({
      pubkey: z.string(),
      outcome: RemovalOutcome,
      to: z.string().optional(),
      why: z.string().optional(),
    }),
  ),
});
export type RemovalsAnswer = z.infer<typeof RemovalsAnswer>;
