// GET /healthz and GET /readyz: the answer a probe reads when the server is alive, or ready.
import { z } from 'zod';

export const ProbeAnswer = z.object({
  status: z.enum(['ok', 'ready']).describe('ok from /healthz, ready from /readyz'),
});
export type ProbeAnswer = z.infer<typeof ProbeAnswer>;
