// What one view of a pod proves about its containers (DESIGN.md "Safety rules"). The watcher
// releases a pod's keys as `confirmed` only on a view that shows the containers stopped; any
// other view of a pod that went away is `forced` (its keys are fenced), since a deletion does
// not prove a stop: kubernetes#73470.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { StopProof } from '../allocation/allocator.js';

/**
 * True when this view shows every container of the pod stopped for good: phase Succeeded or
 * Failed, or every container it names (init, regular and ephemeral) reported terminated.
 */
export function knownStopped(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  // Unknown: the node stopped reporting; its containers may still run (and sign).
  if (phase === 'Unknown') return false;
  if (lostWithNode(pod)) return false;
  if (phase === 'Succeeded' || phase === 'Failed') return true;
  return everyContainerTerminated(pod);
}

/** The stop a release for this last view of a pod claims. */
export function stopProof(lastView: V1Pod): Extract<StopProof, 'confirmed' | 'forced'> {
  return knownStopped(lastView) ? 'confirmed' : 'forced';
}

/**
 * Pod garbage collection marks a pod whose Node object is gone as Failed (with the condition
 * DisruptionTarget, reason DeletionByPodGC) and deletes it. That phase is the controller's,
 * not the kubelet's: the node may only be cut off, its containers still running. See
 * https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions
 */
function lostWithNode(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === 'DeletionByPodGC',
  );
}

function everyContainerTerminated(pod: V1Pod): boolean {
  const statuses: V1ContainerStatus[] = [
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
  // A container without a status yet may still start; a waiting one may (re)start any moment.
  return named.every((name) => {
    const s = byName.get(name);
    return s !== undefined && terminated(s);
  });
}

function terminated(s: V1ContainerStatus): boolean {
  const state = s.state;
  return state?.terminated !== undefined && !state.running && !state.waiting;
}
