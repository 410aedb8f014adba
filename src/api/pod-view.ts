// The part of a v1 Pod that pkm judges a stop by (kube/pod-view.ts), as the API server sends it:
// in a watch event, and as the old object of a deletion review (POST /v1/webhooks/pod-deletion).
import { z } from 'zod';

const NamedSchema = z.object({ name: z.string() });
const ContainerStatus = z.object({
  name: z.string(),
  state: z
    .object({
      running: z.object({}).optional(),
      waiting: z.object({}).optional(),
      terminated: z.object({ exitCode: z.number().int().optional() }).optional(),
    })
    .optional(),
});

/**
 * The part of a v1 Pod this judges by, as the API server sends it (a watch event, or an
 * AdmissionReview's oldObject); client-node's V1Pod fits it too.
 */
export const PodViewSchema = z.object({
  metadata: z.object({ deletionTimestamp: z.string().nullable().optional() }).optional(),
  spec: z
    .object({
      nodeName: z.string().optional(),
      restartPolicy: z.string().optional(),
      initContainers: z.array(NamedSchema).optional(),
      containers: z.array(NamedSchema).optional(),
      ephemeralContainers: z.array(NamedSchema).optional(),
    })
    .optional(),
  status: z
    .object({
      phase: z.string().optional(),
      conditions: z
        .array(z.object({ type: z.string(), status: z.string(), reason: z.string().optional() }))
        .optional(),
      initContainerStatuses: z.array(ContainerStatus).optional(),
      containerStatuses: z.array(ContainerStatus).optional(),
      ephemeralContainerStatuses: z.array(ContainerStatus).optional(),
    })
    .optional(),
});
