// What one view of a pod proves about its containers (DESIGN.md "Safety rules"). The watcher
// releases a pod's keys as `confirmed` only on a view that shows the containers stopped; any
// other view of a pod that went away is `forced` (its keys are fenced), since a deletion does
// not prove a stop: kubernetes#73470.
import type { StopProof } from '../allocation/allocator.js';

interface ContainerStatusView {
  readonly name: string;
  readonly state?:
    | {
        readonly running?: unknown;
        readonly waiting?: unknown;
        readonly terminated?: { readonly exitCode?: number | undefined } | null | undefined;
      }
    | undefined;
}
type Named = { readonly name: string };
/** What the judgement reads; both the schema's output and client-node's V1Pod fit it. */
export interface PodView {
  /** Set once the pod is being deleted: from then on the kubelet restarts no container. */
  readonly metadata?: { readonly deletionTimestamp?: unknown } | undefined;
  readonly spec?:
    | {
        readonly restartPolicy?: string | undefined;
        readonly initContainers?: readonly Named[] | undefined;
        readonly containers?: readonly Named[] | undefined;
        readonly ephemeralContainers?: readonly Named[] | undefined;
      }
    | undefined;
  readonly status?:
    | {
        readonly phase?: string | undefined;
        readonly conditions?:
          | ReadonlyArray<{
              readonly type: string;
              readonly status: string;
              readonly reason?: string | undefined;
            }>
          | undefined;
        readonly initContainerStatuses?: readonly ContainerStatusView[] | undefined;
        readonly containerStatuses?: readonly ContainerStatusView[] | undefined;
        readonly ephemeralContainerStatuses?: readonly ContainerStatusView[] | undefined;
      }
    | undefined;
}

/**
 * True when this view shows every container of the pod stopped for good: phase Succeeded or
 * Failed, or every container it names (init, regular and ephemeral) reported terminated.
 */
export function knownStopped(pod: PodView): boolean {
  const phase = pod.status?.phase;
  // Unknown: the node stopped reporting; its containers may still run (and sign).
  if (phase === 'Unknown') return false;
  if (lostWithNode(pod)) return false;
  if (phase === 'Succeeded' || phase === 'Failed') return true;
  return everyContainerTerminated(pod);
}

/** The stop a release for this last view of a pod claims. */
export function stopProof(lastView: PodView): Extract<StopProof, 'confirmed' | 'forced'> {
  return knownStopped(lastView) ? 'confirmed' : 'forced';
}

/**
 * Pod garbage collection marks a pod whose Node object is gone as Failed (with the condition
 * DisruptionTarget, reason DeletionByPodGC) and deletes it. That phase is the controller's,
 * not the kubelet's: the node may only be cut off, its containers still running. See
 * https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions
 */
function lostWithNode(pod: PodView): boolean {
  return (pod.status?.conditions ?? []).some(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === 'DeletionByPodGC',
  );
}

function everyContainerTerminated(pod: PodView): boolean {
  const statuses: ContainerStatusView[] = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  // Names are unique across a pod's init, regular and ephemeral containers.
  const named = [
    ...(pod.spec?.initContainers ?? []),
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.ephemeralContainers ?? []),
  ].map((c) => c.name);
  if (named.length === 0 || statuses.length === 0) return false; // nothing reported: unknown
  const byName = new Map(statuses.map((s) => [s.name, s]));
  // The kubelet restarts a terminated container unless the pod is being deleted, or its
  // restartPolicy says not to (Always is the default): Never, or OnFailure after a clean exit.
  const policy = pod.spec?.restartPolicy ?? 'Always';
  const deleting = pod.metadata?.deletionTimestamp != null;
  // A container without a status yet may still start; a waiting one may (re)start any moment.
  return named.every((name) => {
    const s = byName.get(name);
    const exit = s === undefined ? undefined : terminatedWith(s);
    if (exit === undefined) return false;
    return deleting || policy === 'Never' || (policy === 'OnFailure' && exit === 0);
  });
}

/** The exit code of a terminated container (NaN when it gives none); undefined otherwise. */
function terminatedWith(s: ContainerStatusView): number | undefined {
  const state = s.state;
  if (state?.terminated == null || state.running != null || state.waiting != null) return undefined;
  return state.terminated.exitCode ?? Number.NaN;
}
