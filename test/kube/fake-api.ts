// A small Kubernetes API server on 127.0.0.1 for the watcher tests. It speaks the real wire
// format for what the watcher uses: GET /api/v1/namespaces/{ns}/pods (a PodList with
// metadata.resourceVersion, filtered by labelSelector), the same with watch=true streaming
// newline-delimited watch events from a resourceVersion, an ERROR event with a Status (410
// Gone, or another code) that ends the stream, and GET /api/v1/namespaces/{ns}/pods/{name}.
// As the real API server's watch cache does, a filtered watch reports a pod whose labels stop
// matching as DELETED, carrying the pod's previous (matching) content, and one that starts
// matching as ADDED.
// It also reviews tokens: POST /apis/authentication.k8s.io/v1/tokenreviews, answering as the
// API server does for a projected ServiceAccount token bound to a pod.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';

/** A container of a fake pod, in its spec and with its status. */
export interface FakeContainer {
  name: string;
  /** Where the spec lists it; default: regular. */
  kind?: 'init' | 'regular' | 'ephemeral';
  state: 'running' | 'waiting' | 'terminated';
  /** Waiting after it ran once (CrashLoopBackOff): its last state is terminated. */
  restarted?: boolean;
}

export interface FakePod {
  name: string;
  namespace: string;
  uid: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  labels?: Record<string, string>;
  /** Default: one container, `validator`, with no status reported. */
  containers?: FakeContainer[];
  /** Being deleted (metadata.deletionTimestamp set): the kubelet restarts no container. */
  deleting?: boolean;
  /** spec.restartPolicy; the API server's default is Always. */
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
}

/** One change, kept so that a watch from an older resourceVersion replays it. */
interface Change {
  rv: number;
  /** The pod after the change; undefined when it was deleted. */
  pod: FakePod | undefined;
  /** The pod before it; undefined when it was created. */
  prev: FakePod | undefined;
}

interface Watcher {
  res: ServerResponse;
  namespace: string;
  selector: string | undefined;
}

function matches(pod: FakePod, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return k !== undefined && pod.labels?.[k] === v;
  });
}

/**
 * A kubeconfig for a fake API server at `url` (token test-token): over HTTPS trusting `caPem`,
 * or plain HTTP on loopback, which client-node and kubectl allow only with verification off.
 */
export function kubeconfigFor(url: string, caPem?: Buffer): string {
  const trust =
    caPem === undefined
      ? 'insecure-skip-tls-verify: true'
      : `certificate-authority-data: ${caPem.toString('base64')}`;
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: fake, cluster: {server: "${url}", ${trust}}}]`,
    'users: [{name: test, user: {token: test-token}}]',
    'contexts: [{name: fake, context: {cluster: fake, user: test, namespace: default}}]',
    'current-context: fake',
    '',
  ].join('\n');
}

interface IssuedToken {
  namespace: string;
  pod: string;
  uid: string;
  audience: string;
  /** seconds since the epoch, as in the JWT */
  exp: number;
}

export class FakeKubeApi {
  /** Tokens reviewed so far. */
  reviews = 0;
  /** The API server's clock (ms), for token expiry. */
  now: () => number = Date.now;
  private readonly tokens = new Map<string, IssuedToken>();
  /** Every LIST asked for; `resourceVersion` is the one answered, absent when it failed. */
  readonly lists: Array<{
    namespace: string;
    labelSelector: string | undefined;
    resourceVersion?: string;
  }> = [];
  /** Every WATCH asked for, with the resourceVersion it asked to start from. */
  readonly watches: Array<{
    namespace: string;
    labelSelector: string | undefined;
    resourceVersion: string | undefined;
  }> = [];
  /** Every GET of one pod, as namespace/name. */
  readonly reads: string[] = [];
  private readonly pods = new Map<string, FakePod>();
  private readonly watchers = new Set<Watcher>();
  /** Every change, by resource version: a watch from version v first gets all after v. */
  private readonly history: Change[] = [];
  private rv = 1;
  /** Lists to answer with a 500 (an API server having trouble). */
  failLists = 0;
  /** Watch requests to answer with a 500 instead of a stream. */
  failWatches = 0;
  private server: Server | undefined;
  private caPem: Buffer | undefined;
  url = '';

  /** Plain HTTP, or HTTPS with this certificate (for 127.0.0.1) and key, as a real API server. */
  async start(tls?: { cert: Buffer; key: Buffer }): Promise<void> {
    const handle = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = tls ? createHttpsServer(tls, handle) : createServer(handle);
    this.caPem = tls?.cert;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    const { port } = this.server.address() as AddressInfo;
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** A kubeconfig for this server, as @kubernetes/client-node loads it. */
  kubeconfigYaml(): string {
    return kubeconfigFor(this.url, this.caPem);
  }

  /**
   * A token shaped like a projected ServiceAccount token (a JWT: header.payload.signature),
   * bound to a pod, for `audience`, valid for `seconds` from now().
   */
  issueToken(namespace: string, pod: string, seconds = 3600, audience = 'pkm'): string {
    const exp = Math.floor(this.now() / 1000) + seconds;
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = [
      part({ alg: 'RS256', kid: 'fake' }),
      part({ aud: [audience], exp, sub: `system:serviceaccount:${namespace}:validator` }),
      randomBytes(32).toString('base64url'),
    ].join('.');
    this.tokens.set(token, { namespace, pod, uid: `uid-${pod}`, audience, exp });
    return token;
  }

  revoke(token: string): void {
    this.tokens.delete(token);
  }

  /** Creates or changes a pod (a new UID under the same name is a change here). */
  upsert(pod: FakePod): void {
    const key = `${pod.namespace}/${pod.name}`;
    const prev = this.pods.get(key);
    this.pods.set(key, pod);
    this.record({ rv: ++this.rv, pod: { ...pod }, prev });
  }

  /**
   * Deletes a pod. The DELETED event carries the pod's last state; `last` changes it first, in
   * the same step, as a status no watcher saw in a MODIFIED event.
   */
  remove(namespace: string, name: string, last: Partial<FakePod> = {}): void {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) return;
    this.pods.delete(`${namespace}/${name}`);
    this.record({ rv: ++this.rv, pod: undefined, prev: { ...pod, ...last } });
  }

  /**
   * An event about a pod as it was earlier (another incarnation under the same name, say), sent
   * late to the open watches: the state and the history stay as they are.
   */
  staleEvent(type: 'MODIFIED' | 'DELETED', pod: FakePod): void {
    for (const w of this.watchers) {
      if (w.namespace === pod.namespace && matches(pod, w.selector))
        w.res.write(`${JSON.stringify({ type, object: this.toObject(pod, this.rv) })}\n`);
    }
  }

  /** The watch's resource version is too old: every open watch gets a 410 and ends. */
  expire(): void {
    this.endWatches(410, 'Expired', 'too old resource version');
  }

  /** Every open watch gets an ERROR event with a Status of this code, and ends. */
  endWatches(
    code: number,
    reason = 'InternalError',
    message = 'etcdserver: request timed out',
  ): void {
    const status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      code,
    };
    for (const w of this.watchers)
      w.res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
    this.watchers.clear();
  }

  /** The connections of every open watch drop (a proxy or a load balancer cut them). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers.clear();
  }

  private toObject(pod: FakePod, rv: number) {
    const containers = pod.containers ?? [{ name: 'validator', state: 'running' }];
    const spec = (kind: FakeContainer['kind']) =>
      containers
        .filter((c) => (c.kind ?? 'regular') === kind)
        .map((c) => ({ name: c.name, image: 'sigp/lighthouse' }));
    const at = '2026-11-23T12:00:00Z';
    const statuses = (kind: FakeContainer['kind']) =>
      containers
        .filter((c) => (c.kind ?? 'regular') === kind)
        .map((c) => ({
          name: c.name,
          image: 'sigp/lighthouse',
          imageID: '',
          ready: c.state === 'running',
          restartCount: c.restarted ? 1 : 0,
          state:
            c.state === 'running'
              ? { running: { startedAt: at } }
              : c.state === 'waiting'
                ? { waiting: { reason: c.restarted ? 'CrashLoopBackOff' : 'ContainerCreating' } }
                : {
                    terminated: { exitCode: 0, reason: 'Completed', startedAt: at, finishedAt: at },
                  },
          ...(c.restarted
            ? { lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: at } } }
            : {}),
        }));
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: pod.namespace,
        uid: pod.uid,
        resourceVersion: String(rv),
        labels: pod.labels ?? {},
        ...(pod.deleting ? { deletionTimestamp: '2026-11-23T12:00:30Z' } : {}),
      },
      spec: {
        restartPolicy: pod.restartPolicy ?? 'Always',
        containers: spec('regular'),
        ...(spec('init').length > 0 ? { initContainers: spec('init') } : {}),
        ...(spec('ephemeral').length > 0 ? { ephemeralContainers: spec('ephemeral') } : {}),
      },
      status: {
        phase: pod.phase,
        ...(pod.containers
          ? {
              containerStatuses: statuses('regular'),
              initContainerStatuses: statuses('init'),
              ephemeralContainerStatuses: statuses('ephemeral'),
            }
          : {}),
      },
    };
  }

  /**
   * The event a watch in `namespace` with `selector` gets for a change, as the API server's
   * watch cache makes it: a pod that stops matching is DELETED with its previous content.
   */
  private eventFor(c: Change, namespace: string, selector: string | undefined) {
    const pod = c.pod ?? c.prev;
    if (pod?.namespace !== namespace) return undefined;
    const now = c.pod !== undefined && matches(c.pod, selector);
    const before = c.prev !== undefined && matches(c.prev, selector);
    if (now && c.pod)
      return { type: before ? 'MODIFIED' : 'ADDED', object: this.toObject(c.pod, c.rv) };
    if (before && c.prev) return { type: 'DELETED', object: this.toObject(c.prev, c.rv) };
    return undefined;
  }

  private record(c: Change): void {
    this.history.push(c);
    for (const w of this.watchers) {
      const event = this.eventFor(c, w.namespace, w.selector);
      if (event) w.res.write(`${JSON.stringify(event)}\n`);
    }
  }

  private review(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        apiVersion?: string;
        kind?: string;
        spec?: { token?: string; audiences?: string[] };
      };
      if (body.apiVersion !== 'authentication.k8s.io/v1' || body.kind !== 'TokenReview') {
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 400 }));
        return;
      }
      this.reviews++;
      const wanted = body.spec?.audiences ?? [];
      const issued = this.tokens.get(body.spec?.token ?? '');
      const valid =
        issued !== undefined &&
        issued.exp * 1000 > this.now() &&
        (wanted.length === 0 || wanted.includes(issued.audience));
      const status =
        valid && issued
          ? {
              authenticated: true,
              user: {
                username: `system:serviceaccount:${issued.namespace}:validator`,
                uid: `sa-uid-${issued.namespace}`,
                groups: [
                  'system:serviceaccounts',
                  `system:serviceaccounts:${issued.namespace}`,
                  'system:authenticated',
                ],
                extra: {
                  'authentication.kubernetes.io/pod-name': [issued.pod],
                  'authentication.kubernetes.io/pod-uid': [issued.uid],
                },
              },
              audiences: [issued.audience],
            }
          : { user: {}, error: 'invalid bearer token, token lookup failed' };
      res.writeHead(201, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          kind: 'TokenReview',
          apiVersion: 'authentication.k8s.io/v1',
          metadata: { creationTimestamp: null },
          spec: { audiences: wanted },
          status,
        }),
      );
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    if (
      req.method === 'POST' &&
      url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews' &&
      req.headers.authorization === 'Bearer test-token'
    ) {
      this.review(req, res);
      return;
    }
    const one = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    if (
      req.method === 'GET' &&
      one?.[1] &&
      one[2] &&
      req.headers.authorization === 'Bearer test-token'
    ) {
      this.readPod(decodeURIComponent(one[1]), decodeURIComponent(one[2]), res);
      return;
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    if (req.method !== 'GET' || !m?.[1] || req.headers.authorization !== 'Bearer test-token') {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ kind: 'Status', code: 404 }));
      return;
    }
    const namespace = decodeURIComponent(m[1]);
    const selector = url.searchParams.get('labelSelector') ?? undefined;
    const watch = url.searchParams.get('watch');
    if (watch === 'true' || watch === '1') {
      const from = url.searchParams.get('resourceVersion') ?? undefined;
      this.watches.push({ namespace, labelSelector: selector, resourceVersion: from });
      if (this.failWatches > 0) {
        this.failWatches--;
        this.answer500(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const w: Watcher = { res, namespace, selector };
      const since = Number(from ?? '0');
      for (const c of this.history) {
        const event = c.rv > since ? this.eventFor(c, namespace, selector) : undefined;
        if (event) res.write(`${JSON.stringify(event)}\n`);
      }
      this.watchers.add(w);
      req.on('close', () => this.watchers.delete(w));
      return;
    }
    if (this.failLists > 0) {
      this.failLists--;
      this.lists.push({ namespace, labelSelector: selector });
      this.answer500(res);
      return;
    }
    this.lists.push({ namespace, labelSelector: selector, resourceVersion: String(this.rv) });
    const items = [...this.pods.values()].filter(
      (p) => p.namespace === namespace && matches(p, selector),
    );
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.rv) },
        items: items.map((p) => this.toObject(p, this.rv)),
      }),
    );
  }

  private readPod(namespace: string, name: string, res: ServerResponse): void {
    this.reads.push(`${namespace}/${name}`);
    const pod = this.pods.get(`${namespace}/${name}`);
    if (pod) {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(this.toObject(pod, this.rv)));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `pods "${name}" not found`,
        reason: 'NotFound',
        details: { name, kind: 'pods' },
        code: 404,
      }),
    );
  }

  private answer500(res: ServerResponse): void {
    res.writeHead(500, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'etcdserver: request timed out',
        code: 500,
      }),
    );
  }
}

/** A fresh fake API for each test of the calling file, started before it and stopped after. */
export function fakeKubeApiEachTest(): { readonly api: FakeKubeApi } {
  let current: FakeKubeApi | undefined;
  beforeEach(async () => {
    current = new FakeKubeApi();
    await current.start();
  });
  afterEach(async () => {
    await current?.stop();
  });
  return {
    get api(): FakeKubeApi {
      if (!current) throw new Error('the fake Kubernetes API runs only inside a test');
      return current;
    },
  };
}
