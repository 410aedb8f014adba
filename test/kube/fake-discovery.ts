// A Kubernetes API server on 127.0.0.1 that knows kinds but holds no objects: enough for
// `kubectl apply --dry-run=client --validate=false`, which discovers each kind's resource
// (GET /api, /api/v1, /apis, /apis/{group}/{version}, legacy discovery JSON) and then reads
// the object to choose between create and patch (a 404 Status here: "created (dry run)").
// It models a cluster with cert-manager and the Prometheus Operator installed.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { kubeconfigFor } from './fake-api.js';

interface Kind {
  readonly kind: string;
  readonly name: string;
  readonly namespaced: boolean;
}

const GROUPS: Record<string, Kind[]> = {
  v1: [
    { kind: 'Namespace', name: 'namespaces', namespaced: false },
    { kind: 'ServiceAccount', name: 'serviceaccounts', namespaced: true },
    { kind: 'Service', name: 'services', namespaced: true },
    { kind: 'Secret', name: 'secrets', namespaced: true },
    { kind: 'ConfigMap', name: 'configmaps', namespaced: true },
    { kind: 'Pod', name: 'pods', namespaced: true },
  ],
  'apps/v1': [
    { kind: 'StatefulSet', name: 'statefulsets', namespaced: true },
    { kind: 'Deployment', name: 'deployments', namespaced: true },
  ],
  'policy/v1': [{ kind: 'PodDisruptionBudget', name: 'poddisruptionbudgets', namespaced: true }],
  'rbac.authorization.k8s.io/v1': [
    { kind: 'ClusterRole', name: 'clusterroles', namespaced: false },
    { kind: 'ClusterRoleBinding', name: 'clusterrolebindings', namespaced: false },
    { kind: 'Role', name: 'roles', namespaced: true },
    { kind: 'RoleBinding', name: 'rolebindings', namespaced: true },
  ],
  'admissionregistration.k8s.io/v1': [
    {
      kind: 'ValidatingWebhookConfiguration',
      name: 'validatingwebhookconfigurations',
      namespaced: false,
    },
  ],
  'cert-manager.io/v1': [
    { kind: 'Issuer', name: 'issuers', namespaced: true },
    { kind: 'Certificate', name: 'certificates', namespaced: true },
  ],
  'monitoring.coreos.com/v1': [
    { kind: 'PrometheusRule', name: 'prometheusrules', namespaced: true },
    { kind: 'ServiceMonitor', name: 'servicemonitors', namespaced: true },
  ],
};

export class FakeDiscoveryApi {
  private server: Server | undefined;
  url = '';
  /** Objects kubectl read: one GET per manifest object, answered 404. */
  readonly reads: string[] = [];

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const answer = this.answer(path);
      if (answer === undefined) {
        if (req.method === 'GET') this.reads.push(path);
        res.writeHead(404, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: `${path} not found`,
            reason: 'NotFound',
            code: 404,
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  kubeconfigYaml(): string {
    return kubeconfigFor(this.url);
  }

  private answer(path: string): object | undefined {
    if (path === '/version')
      return { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' };
    if (path === '/api')
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.url }],
      };
    if (path === '/apis')
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: Object.keys(GROUPS)
          .filter((gv) => gv.includes('/'))
          .map((gv) => {
            const [group = '', version = ''] = gv.split('/');
            const v = { groupVersion: gv, version };
            return { name: group, versions: [v], preferredVersion: v };
          }),
      };
    const gv = path === '/api/v1' ? 'v1' : /^\/apis\/([^/]+\/[^/]+)$/.exec(path)?.[1];
    const kinds = gv === undefined ? undefined : GROUPS[gv];
    if (gv === undefined || kinds === undefined) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv,
      resources: kinds.map((k) => ({
        name: k.name,
        singularName: k.kind.toLowerCase(),
        namespaced: k.namespaced,
        kind: k.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    };
  }
}
