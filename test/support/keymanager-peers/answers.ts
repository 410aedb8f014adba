// The fake VC's answers on its own test routes (/fake/v1/…), as schemas: a child's answer is
// parsed, not trusted.
import { z } from 'zod';

export const AttestReport = z.object({
  epoch: z.number().int(),
  signed: z.array(
    z.object({ pubkey: z.string(), signature: z.string(), via: z.string().optional() }),
  ),
  refused: z.array(z.object({ pubkey: z.string(), reason: z.string() })),
});
export type AttestReport = z.infer<typeof AttestReport>;

export const Holdings = z.object({
  local: z.array(z.string()),
  remote: z.array(z.object({ pubkey: z.string(), url: z.string() })),
});
export type Holdings = z.infer<typeof Holdings>;
