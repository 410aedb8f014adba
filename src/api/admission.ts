// POST /v1/webhooks/pod-deletion on the wire: the AdmissionReview the API server sends for a
// DELETE of a pod, and the answer (always allowed).
import { z } from 'zod';
import { PodViewSchema } from './pod-view.js';

const Meta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    // An empty UID is no UID: a record keeps a UID of one character at least (records.ts).
    uid: z
      .string()
      .optional()
      .transform((uid) => uid || undefined),
  })
  .passthrough();
/** meta.k8s.io/v1 DeleteOptions, as the review's `options` carries them for a DELETE. */
const DeleteOptions = z
  .object({ gracePeriodSeconds: z.number().int().min(0).nullable().optional() })
  .passthrough();
/** authentication.k8s.io/v1 UserInfo: who asked for the deletion. */
const UserInfo = z
  .object({
    username: z.string().min(1),
    uid: z.string().optional(),
    groups: z.array(z.string()).optional(),
  })
  .passthrough();
/** admission.k8s.io/v1 AdmissionReview, as the API server sends it for a DELETE of a pod. */
export const AdmissionReview = z
  .object({
    apiVersion: z.literal('admission.k8s.io/v1'),
    kind: z.literal('AdmissionReview'),
    request: z
      .object({
        uid: z.string().min(1),
        kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }).passthrough(),
        operation: z.string(),
        name: z.string().optional(),
        namespace: z.string().optional(),
        dryRun: z.boolean().optional(),
        userInfo: UserInfo,
        options: DeleteOptions.nullable().optional(),
        oldObject: PodViewSchema.extend({
          metadata: Meta.extend({ deletionTimestamp: z.string().nullable().optional() }).optional(),
        })
          .nullable()
          .optional(),
      })
      .passthrough(),
  })
  .passthrough()
  .describe('admission.k8s.io/v1 AdmissionReview');
export type AdmissionRequest = z.infer<typeof AdmissionReview>['request'];

/** The answer: the review's uid, always allowed. */
export const AdmissionAnswer = z
  .object({
    apiVersion: z.literal('admission.k8s.io/v1'),
    kind: z.literal('AdmissionReview'),
    response: z.object({ uid: z.string(), allowed: z.boolean() }),
  })
  .describe('admission.k8s.io/v1 AdmissionReview, with the response');
export type AdmissionAnswer = z.infer<typeof AdmissionAnswer>;
