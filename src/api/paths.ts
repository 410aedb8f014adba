// Every route the server mounts, once: express templates (`:param`), which the server's routers
// mount, the client fills (pathTo) and the OpenAPI document lists (openApiPath).

/** The routes outside a pod, by what they serve (DESIGN.md "HTTP API"). */
export const ROUTES = {
  health: '/healthz',
  ready: '/readyz',
  metrics: '/metrics',
  openApi: '/openapi.json',
  assignments: '/v1/assignments',
  assignmentsPage: '/assignments',
  status: '/v1/status',
  deposits: '/v1/deposits',
  events: '/v1/events',
  retireKey: '/v1/keys/:pubkey/retire',
  kekRotation: '/v1/admin/kek-rotation',
  keysImport: '/v1/admin/keys/import',
  podDeletionWebhook: '/v1/webhooks/pod-deletion',
  /** The Keymanager API's signVoluntaryExit (specs/keymanager-APIs/apis/voluntary_exit.yaml). */
  voluntaryExit: '/eth/v1/validator/:pubkey/voluntary_exit',
  /** The Keymanager API's local keystores (specs/keymanager-APIs/apis/local_keystores.yaml). */
  keystores: '/eth/v1/keystores',
  /** Live key moves (issue 16): mark keys of one pod leaving for another. */
  moves: '/v1/moves',
  /** Live key moves: even the keys out over a set of pods. */
  rebalance: '/v1/rebalance',
} as const;

/**
 * The routes under a pod: its keys, its heartbeat, its slashing-protection upload, and its
 * agent's assignment and removal reports (live key moves).
 */
export type PodRoute = 'keys' | 'heartbeat' | 'slashing-protection' | 'assignment' | 'removals';

/** A pod in the default namespace, and a pod in a named one. */
const POD = '/v1/pods/:pod';
const NAMESPACED_POD = '/v1/namespaces/:namespace/pods/:pod';

/** Both templates of one of a pod's routes: the default namespace's first. */
export function podTemplates<R extends PodRoute>(
  route: R,
): readonly [`${typeof POD}/${R}`, `${typeof NAMESPACED_POD}/${R}`] {
  return [`${POD}/${route}`, `${NAMESPACED_POD}/${route}`];
}

/** The names of a template's `:params`. */
export type ParamsOf<T extends string> = T extends `${string}:${infer P}/${infer Rest}`
  ? P | ParamsOf<`/${Rest}`>
  : T extends `${string}:${infer P}`
    ? P
    : never;

/**
 * A template filled with (URL-encoded) values, relative to the server's URL: without the
 * leading slash, so that a server URL with a path prefix keeps it (new URL(path, server)).
 */
export function pathTo<T extends string>(template: T, params: Record<ParamsOf<T>, string>): string {
  const values: Record<string, string> = params;
  return template
    .slice(1)
    .replace(/:(\w+)/g, (_match, name: string) => encodeURIComponent(values[name] ?? ''));
}

/** A template as OpenAPI writes it: `{param}` for `:param`. */
export function openApiPath(template: string): string {
  return template.replace(/:(\w+)/g, '{$1}');
}
