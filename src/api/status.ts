// What an operator reads: GET /v1/status (pkm status) and GET /v1/assignments.
import { z } from 'zod';

const counts = z.record(z.string(), z.number().int());
const pubkeys = z.array(z.string());

/** An event of the audit log, in brief. */
export const RecentEvent = z.object({
  at: z.string().meta({ format: 'date-time' }),
  pod: z.string().optional(),
  pubkeys,
  detail: z.string().optional(),
});
export type RecentEvent = z.infer<typeof RecentEvent>;

export const StatusAnswer = z.object({
  ready: z.boolean(),
  notReady: z.string().optional(),
  counts,
  pool: z.object({
    free: z.number().int(),
    cooling: z.number().int(),
    canCreate: z.boolean(),
    /** --new-keys; servers before it answer without it (and always made new keys). */
    newKeys: z.enum(['always', 'never']).default('always'),
    healthy: z.boolean(),
  }),
  conflicts: z.array(RecentEvent),
  /** Servers before fences and reported keys answer without them. */
  fences: z
    .array(RecentEvent)
    .default([])
    .describe('keys fenced lately: their holder’s stop was not confirmed'),
  reported: z.array(RecentEvent).default([]),
  lastDeposits: z.array(RecentEvent),
});
export type StatusAnswer = z.infer<typeof StatusAnswer>;

/** Counts per state, and which pod holds which pubkeys. */
export const AssignmentsAnswer = z.object({ counts, pods: z.record(z.string(), pubkeys) });
