// One pod's keys on the wire (POST, GET, DELETE …/keys): the allocation request, and the
// answers: the keys with their secrets, the pod's pubkeys, the released pubkeys.
import { z } from 'zod';
import { Interchange } from './interchange.js';
import { podFields } from './pod-fields.js';
import { PUBKEY } from './pubkey.js';

/**
 * POST …/keys. Only the shape is checked here: the count's range (an integer from 1 to
 * --max-keys-per-pod) is the allocator's, refused as COUNT_OUT_OF_RANGE, so the document
 * states it as metadata rather than as a check.
 */
export const AllocateBody = z
  .object({ count: z.number().meta({ type: 'integer', minimum: 1 }) })
  .strict();
export type AllocateBody = z.infer<typeof AllocateBody>;

/** A BLS secret key: 0x and 32 bytes, lowercase hex. */
const SECRET_KEY = /^0x[0-9a-f]{64}$/;

export const AllocatedKey = z.object({
  pubkey: z.string().regex(PUBKEY),
  secretKey: z.string().regex(SECRET_KEY),
  path: z.string().optional().describe('EIP-2334 path, for mnemonic keys'),
  slashingProtection: Interchange.optional(),
});

/** The answer to POST …/keys: the pod's keys, with secrets. */
export const AllocationAnswer = z.object({ ...podFields, keys: z.array(AllocatedKey) });
export type AllocationAnswer = z.infer<typeof AllocationAnswer>;

/** The answer to GET …/keys. */
export const PodKeysAnswer = z.object({ ...podFields, pubkeys: z.array(z.string()) });

/** The answer to DELETE …/keys: the keys that now cool. */
export const ReleasedAnswer = z.object({ ...podFields, released: z.array(z.string()) });
export type ReleasedAnswer = z.infer<typeof ReleasedAnswer>;
