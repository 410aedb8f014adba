// POST /eth/v1/validator/{pubkey}/voluntary_exit, the Keymanager API's signVoluntaryExit
// (specs/keymanager-APIs/apis/voluntary_exit.yaml): the query it takes and the answer,
// {"data": SignedVoluntaryExit} with numbers as decimal strings and bytes as 0x hex.
import { z } from 'zod';

/** The largest uint64. */
const UINT64_MAX = 2n ** 64n - 1n;

/** The spec's Uint64 (types/uint.yaml): a decimal string without leading zeros, up to 2^64 - 1. */
export const Uint64 = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,19})$/)
  .refine((v) => BigInt(v) <= UINT64_MAX, { message: 'larger than a uint64' });

/** The spec's Signature (types/signature.yaml): 96 bytes as 0x hex. */
const Signature = z.string().regex(/^0x[a-fA-F0-9]{192}$/);

/** types/voluntary_exit.yaml: SignedVoluntaryExit, as the beacon API takes it. */
export const SignedVoluntaryExit = z.object({
  message: z.object({ epoch: Uint64, validator_index: Uint64 }),
  signature: Signature,
});
export type SignedVoluntaryExit = z.infer<typeof SignedVoluntaryExit>;

/** The 200 answer (SignVoluntaryExitResponse). */
export const SignVoluntaryExitAnswer = z.object({ data: SignedVoluntaryExit });

/**
 * The query: `epoch` as in the spec; `validator_index` is pkm's addition, for a key whose index
 * the server cannot look up (no --beacon-url). A wrong index only yields an exit that no beacon
 * node accepts: the signature verifies against the pubkey of the validator at that index.
 */
export const VoluntaryExitQuery = z
  .object({ epoch: Uint64.optional(), validator_index: Uint64.optional() })
  .strict();

/** The spec's ErrorResponse: this route's errors carry `message` beside pkm's `error`. */
export const KeymanagerError = z.object({ message: z.string() });
