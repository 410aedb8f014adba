// A key's per-validator settings, as the Keymanager API's per-validator routes carry them
// (specs/keymanager-APIs/apis/fee_recipient.yaml, graffiti.yaml, gas_limit.yaml): read from the
// validator client a key leaves, kept with the key, and set on the one it goes to, so that a
// move does not reset them (Lighthouse #5402).
import { z } from 'zod';

/** types/eth_address.yaml: 0x and 40 hex digits (kept as the VC gave it, checksummed or not). */
export const ETH_ADDRESS = /^0x[a-fA-F0-9]{40}$/;
/** types/uint.yaml Uint64: a decimal string without leading zeros. */
export const UINT64 = /^(0|[1-9][0-9]{0,19})$/;
/** The graffiti field of a BeaconBlockBody is Bytes32: at most 32 bytes of UTF-8. */
export const MAX_GRAFFITI_BYTES = 32;

export const KeySettings = z
  .object({
    feeRecipient: z.string().regex(ETH_ADDRESS).optional(),
    graffiti: z
      .string()
      .refine((g) => Buffer.byteLength(g, 'utf8') <= MAX_GRAFFITI_BYTES, {
        message: `at most ${MAX_GRAFFITI_BYTES} bytes of UTF-8`,
      })
      .optional(),
    gasLimit: z
      .string()
      .regex(UINT64)
      .refine((g) => BigInt(g) < 2n ** 64n, { message: 'a uint64' })
      .optional(),
  })
  .strict()
  .describe(
    'Per-validator settings that travel with the key: fee recipient, graffiti, gas limit (Keymanager API per-validator routes)',
  );
export type KeySettings = z.infer<typeof KeySettings>;

/** Settings with no field set are no settings. */
export function hasSettings(s: KeySettings | undefined): s is KeySettings {
  return (
    s !== undefined &&
    (s.feeRecipient !== undefined || s.graffiti !== undefined || s.gasLimit !== undefined)
  );
}
