import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { knownStopped, stopProof } from '../../src/kube/pod-view.js';

type State = 'running' | 'waiting' | 'terminated';

const status = (name: string, state: State, restarted = false): V1ContainerStatus => ({
  name,
  image: 'sigp/lighthouse',
  imageID: '',
  ready: state === 'running',
  restartCount: restarted ? 1 : 0,
  state:
    state === 'running'
      ? { running: {} }
      : state === 'waiting'
        ? { waiting: { reason: restarted ? 'CrashLoopBackOff' : 'ContainerCreating' } }
        : { terminated: { exitCode: 0 } },
  ...(restarted ? { lastState: { terminated: { exitCode: 1 } } } : {}),
});

/** A pod with an init container `fetch-keys`, a container `validator` and their states. */
function pod(
  phase: string,
  init: State | undefined,
  main: State | undefined,
  extra: Partial<NonNullable<V1Pod['status']>> = {},
): V1Pod {
  return {
    metadata: { name: 'v-0', namespace: 'validators', uid: 'u1' },
    spec: {
      initContainers: [{ name: 'fetch-keys' }],
      containers: [{ name: 'validator' }],
    },
    status: {
      phase,
      ...(init ? { initContainerStatuses: [status('fetch-keys', init)] } : {}),
      ...(main ? { containerStatuses: [status('validator', main)] } : {}),
      ...extra,
    },
  };
}

describe('what one view of a pod proves', () => {
  it('phase Succeeded or Failed: stopped (confirmed)', () => {
    expect(knownStopped(pod('Succeeded', 'terminated', 'terminated'))).toBe(true);
    expect(stopProof(pod('Failed', 'terminated', 'terminated'))).toBe('confirmed');
  });

  it('every container terminated, init and regular, in phase Running: stopped once the pod is being deleted, or if it never restarts them', () => {
    const ended = pod('Running', 'terminated', 'terminated');
    // restartPolicy Always (the default): the kubelet starts them again.
    expect(knownStopped(ended)).toBe(false);
    expect(
      knownStopped({
        ...ended,
        spec: { ...ended.spec, containers: [{ name: 'validator' }], restartPolicy: 'Never' },
      }),
    ).toBe(true);
    expect(
      knownStopped({ ...ended, metadata: { ...ended.metadata, deletionTimestamp: new Date() } }),
    ).toBe(true);
  });

  it('any container running, waiting after a start, or without a status yet: not stopped', () => {
    expect(stopProof(pod('Running', 'terminated', 'running'))).toBe('forced');
    const crashLooping = pod('Running', 'terminated', undefined, {
      containerStatuses: [status('validator', 'waiting', true)],
    });
    expect(knownStopped(crashLooping)).toBe(false);
    expect(knownStopped(pod('Pending', 'terminated', undefined))).toBe(false);
    expect(knownStopped(pod('Pending', undefined, undefined))).toBe(false);
  });

  it('an ephemeral container still running keeps the pod from counting as stopped', () => {
    const debugged = pod('Running', 'terminated', 'terminated', {
      ephemeralContainerStatuses: [status('debugger', 'running')],
    });
    debugged.spec = {
      ...debugged.spec,
      containers: [{ name: 'validator' }],
      restartPolicy: 'Never',
    };
    debugged.spec.ephemeralContainers = [{ name: 'debugger' }];
    expect(knownStopped(debugged)).toBe(false);
    debugged.status = {
      ...debugged.status,
      ephemeralContainerStatuses: [status('debugger', 'terminated')],
    };
    expect(knownStopped(debugged)).toBe(true);
  });

  it('phase Unknown is never stopped, whatever its last container statuses say', () => {
    expect(stopProof(pod('Unknown', 'terminated', 'terminated'))).toBe('forced');
  });

  it('Failed set by pod garbage collection (its node object is gone) is not a stop', () => {
    const orphaned = pod('Failed', 'terminated', 'running', {
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'DeletionByPodGC' }],
    });
    expect(stopProof(orphaned)).toBe('forced');
    // Another disruption, reported by the kubelet once it stopped the containers, stays one.
    const evicted = pod('Failed', 'terminated', 'terminated', {
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }],
    });
    expect(stopProof(evicted)).toBe('confirmed');
  });
});
