// Whether a pod object shows that its containers stopped for good: phase Succeeded or Failed,
// or every container in its status terminated (init, regular and ephemeral). The kubelet
// writes that status, so a pod on a cut-off node keeps showing what it last ran: it never
// looks stopped (kubernetes#73470).
import { z } from 'zod';

const ContainerStatus = z
  .object({ state: z.object({ terminated: z.unknown().optional() }).passthrough().optional() })
  .passthrough();

/** The part of a v1 Pod this reads; anything else passes through. */
export const PodStatusView = z
  .object({
    phase: z.string().optional(),
    containerStatuses: z.array(ContainerStatus).optional(),
    initContainerStatuses: z.array(ContainerStatus).optional(),
    ephemeralContainerStatuses: z.array(ContainerStatus).optional(),
  })
  .passthrough();
export type PodStatusView = z.infer<typeof PodStatusView>;

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed']);

export function podStopped(status: PodStatusView | undefined | null): boolean {
  if (!status) return false;
  if (TERMINAL_PHASES.has(status.phase ?? '')) return true;
  const all = [
    ...(status.initContainerStatuses ?? []),
    ...(status.containerStatuses ?? []),
    ...(status.ephemeralContainerStatuses ?? []),
  ];
  return (
    all.length > 0 &&
    all.every((c) => c.state?.terminated !== undefined && c.state.terminated !== null)
  );
}
