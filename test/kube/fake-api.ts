// A small Kubernetes API server on 127.0.0.1 for the watcher tests. It speaks the real wire
// format for what the watcher uses: GET /api/v1/namespaces/{ns}/pods (a PodList with
// metadata.resourceVersion, filtered by labelSelector), the same with watch=true streaming
// newline-delimited watch events, and an ERROR event with a 410 Status that ends the stream.
// It also reviews tokens: POST /apis/authentication.k8s.io/v1/tokenreviews, answering as the
// API server does for a projected ServiceAccount token bound to a pod.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FakePod {
  name: string;
  namespace: string;
  uid: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  labels?: Record<string, string>;
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
  readonly lists: Array<{ namespace: string; labelSelector: string | undefined }> = [];
  private readonly pods = new Map<string, FakePod>();
  private readonly watchers = new Set<Watcher>();
  /** Every event, by resource version: a watch from version v first gets all after v. */
  private readonly history: Array<{ rv: number; type: string; pod: FakePod }> = [];
  private rv = 1;
  /** Lists to answer with a 500 (an API server having trouble). */
  failLists = 0;
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

  upsert(pod: FakePod): void {
    const key = `${pod.namespace}/${pod.name}`;
    const type = this.pods.has(key) ? 'MODIFIED' : 'ADDED';
    this.pods.set(key, pod);
    this.emit(type, pod);
  }

  remove(namespace: string, name: string): void {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) return;
    this.pods.delete(`${namespace}/${name}`);
    this.emit('DELETED', pod);
  }

  /** The watch's resource version is too old: every open watch gets a 410 and ends. */
  expire(): void {
    for (const w of this.watchers) {
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'too old resource version',
        reason: 'Expired',
        code: 410,
      };
      w.res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
    }
    this.watchers.clear();
  }

  private toObject(pod: FakePod, rv: number) {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: pod.namespace,
        uid: pod.uid,
        resourceVersion: String(rv),
        labels: pod.labels ?? {},
      },
      spec: { containers: [{ name: 'validator', image: 'sigp/lighthouse' }] },
      status: { phase: pod.phase },
    };
  }

  private emit(type: string, pod: FakePod): void {
    this.rv++;
    this.history.push({ rv: this.rv, type, pod: { ...pod } });
    for (const w of this.watchers) {
      if (w.namespace === pod.namespace && matches(pod, w.selector)) {
        w.res.write(`${JSON.stringify({ type, object: this.toObject(pod, this.rv) })}\n`);
      }
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
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const w: Watcher = { res, namespace, selector };
      const since = Number(url.searchParams.get('resourceVersion') ?? '0');
      for (const e of this.history) {
        if (e.rv > since && e.pod.namespace === namespace && matches(e.pod, selector)) {
          res.write(`${JSON.stringify({ type: e.type, object: this.toObject(e.pod, e.rv) })}\n`);
        }
      }
      this.watchers.add(w);
      req.on('close', () => this.watchers.delete(w));
      return;
    }
    this.lists.push({ namespace, labelSelector: selector });
    if (this.failLists > 0) {
      this.failLists--;
      res.writeHead(500, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: 'etcdserver: request timed out',
          code: 500,
        }),
      );
      return;
    }
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
}
