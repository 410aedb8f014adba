// The fields every answer about one pod starts with.
import { z } from 'zod';

/** The pod the answer is about; `namespace` only outside the default namespace. */
export const podFields = { namespace: z.string().optional(), pod: z.string() };
