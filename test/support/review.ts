// AdmissionReviews (admission.k8s.io/v1) for DELETE on a pod, as the API server sends them:
// who asked (userInfo), the DeleteOptions, and the whole old pod with its status.

export const KUBELET = {
  username: 'system:node:node-a',
  uid: 'node-a-uid',
  groups: ['system:nodes', 'system:authenticated'],
};
export const CONTROLLER = {
  username: 'system:serviceaccount:kube-system:statefulset-controller',
  uid: 'x',
  groups: ['system:serviceaccounts'],
};
export const OPERATOR = {
  username: 'alice@example.com',
  uid: 'alice',
  groups: ['system:authenticated'],
};

const running = { running: { startedAt: '2026-11-23T12:00:00Z' } };
const terminated = { terminated: { exitCode: 0, reason: 'Completed' } };

/** The pod's container statuses: still running, or every container stopped. */
export function podStatus(state: 'running' | 'terminated') {
  const s = state === 'running' ? running : terminated;
  return {
    phase: 'Running',
    initContainerStatuses: [{ name: 'pkm', state: terminated }],
    containerStatuses: [{ name: 'vc', state: s }],
  };
}

export function review(
  over: {
    operation?: string;
    name?: string;
    namespace?: string;
    dryRun?: boolean;
    kind?: string;
    oldName?: string;
    uid?: string;
    userInfo?: unknown;
    /** The DeleteOptions' gracePeriodSeconds; null: no options at all. */
    grace?: number | null;
    options?: unknown;
    status?: unknown;
    /** The old pod is being deleted already (a graceful deletion came first). */
    deleting?: boolean;
  } = {},
) {
  const name = over.name ?? 'validator-0';
  const namespace = over.namespace ?? 'validators';
  const grace = over.grace === undefined ? 30 : over.grace;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: over.kind ?? 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: over.kind ?? 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name,
      namespace,
      operation: over.operation ?? 'DELETE',
      userInfo: over.userInfo === undefined ? CONTROLLER : over.userInfo,
      object: null,
      oldObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: over.oldName ?? name,
          namespace,
          uid: over.uid ?? '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
          labels: { app: 'validator' },
          ...(over.deleting ? { deletionTimestamp: '2026-11-23T12:00:30Z' } : {}),
        },
        spec: { nodeName: 'node-a', containers: [{ name: 'vc', image: 'sigp/lighthouse' }] },
        status: over.status ?? podStatus('running'),
      },
      dryRun: over.dryRun ?? false,
      options:
        over.options !== undefined
          ? over.options
          : grace === null
            ? null
            : { apiVersion: 'meta.k8s.io/v1', kind: 'DeleteOptions', gracePeriodSeconds: grace },
    },
  };
}
