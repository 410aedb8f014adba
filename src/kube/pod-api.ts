// The three calls the pod watcher makes, over @kubernetes/client-node: a fresh LIST, a GET of one
// pod, and a WATCH from a list's resourceVersion. Every call is bounded in time and ends when
// the watcher stops, so a stalled API server can never freeze the watcher in a stale view.
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';

/** A list or a GET that takes longer than this failed (it does not count as a fresh view). */
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * The API server ends a watch after timeoutSeconds; the watcher then lists afresh. A watch that
 * outlives it by WATCH_SLACK_MS is taken as a half-open connection and dropped.
 */
export const WATCH_TIMEOUT_S = 300;
const WATCH_SLACK_MS = 30_000;

export type PodEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface PodList {
  readonly items: readonly V1Pod[];
  readonly resourceVersion: string;
}

/** How a watch ended: stopped by us, ended by the server, or failed. */
export type WatchEnd =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'closed' }
  | { readonly kind: 'failed'; readonly error: Error };

export interface WatchHandle {
  readonly ended: Promise<WatchEnd>;
  stop(): void;
}

/** A watch ERROR event carries a Status (metav1.Status): its code, reason and message. */
export class WatchStatusError extends Error {
  constructor(
    readonly code: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'WatchStatusError';
  }
}

function statusError(obj: unknown): WatchStatusError {
  const s = (typeof obj === 'object' && obj !== null ? obj : {}) as {
    code?: unknown;
    reason?: unknown;
    message?: unknown;
  };
  const code = typeof s.code === 'number' ? s.code : undefined;
  const text = [s.reason, s.message].filter((p) => typeof p === 'string').join(': ');
  return new WatchStatusError(code, `watch error ${code ?? '?'}: ${text || 'no message'}`);
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

function isPod(obj: unknown): obj is V1Pod {
  const meta = (obj as { metadata?: unknown } | null)?.metadata;
  return typeof meta === 'object' && meta !== null;
}

export class PodApi {
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;

  constructor(
    kc: KubeConfig,
    private readonly labelSelector: string | undefined,
    /** Aborted when the watcher stops: every request in flight ends with it. */
    private readonly stopped: AbortSignal,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.watcher = new Watch(kc);
  }

  /**
   * A LIST without resourceVersion: the API server answers from its most recent state (a
   * consistent read), never from a cache that may lag. See
   * https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list
   */
  async list(namespace: string | undefined): Promise<PodList> {
    const selector = this.labelSelector ? { labelSelector: this.labelSelector } : {};
    const opts = this.bounded();
    const list =
      namespace === undefined
        ? await this.core.listPodForAllNamespaces(selector, opts)
        : await this.core.listNamespacedPod({ namespace, ...selector }, opts);
    const resourceVersion = list.metadata?.resourceVersion;
    if (!resourceVersion) throw new Error('the pod list has no resourceVersion to watch from');
    return { items: list.items, resourceVersion };
  }

  /** The pod as the API server has it now, whatever its labels; undefined: there is none. */
  async read(namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ namespace, name }, this.bounded());
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Watches pods from `resourceVersion` on. `ended` resolves exactly once: when the server
   * closes the stream, on any failure (a non-200 answer, an ERROR event of any code, a dropped
   * connection, a watch that outlives its timeout), or when stopped. Nothing is delivered after.
   */
  watch(
    namespace: string | undefined,
    resourceVersion: string,
    onEvent: (type: PodEventType, pod: V1Pod) => void,
  ): WatchHandle {
    const path =
      namespace === undefined
        ? '/api/v1/pods'
        : `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
    let settle: (end: WatchEnd) => void = () => {};
    const ended = new Promise<WatchEnd>((resolve) => {
      settle = resolve;
    });
    let over = false;
    let controller: AbortController | undefined;
    const end = (how: WatchEnd) => {
      if (over) return;
      over = true;
      clearTimeout(watchdog);
      this.stopped.removeEventListener('abort', onStop);
      controller?.abort();
      settle(how);
    };
    const onStop = () => end({ kind: 'stopped' });
    // Watch gives its AbortController only once the server answered: a watch that never gets
    // an answer is abandoned here, and aborted as soon as the controller arrives.
    const watchdog = setTimeout(
      () => end({ kind: 'failed', error: new Error('the watch outlived its timeout') }),
      WATCH_TIMEOUT_S * 1000 + WATCH_SLACK_MS,
    );
    watchdog.unref();
    if (this.stopped.aborted) end({ kind: 'stopped' });
    else this.stopped.addEventListener('abort', onStop);
    const query = {
      resourceVersion,
      timeoutSeconds: WATCH_TIMEOUT_S,
      ...(this.labelSelector ? { labelSelector: this.labelSelector } : {}),
    };
    const onLine = (type: string, obj: unknown) => {
      if (over) return;
      if (type === 'ERROR') end({ kind: 'failed', error: statusError(obj) });
      else if ((type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') && isPod(obj))
        onEvent(type, obj);
      // BOOKMARK: only a resourceVersion, and the watcher never resumes from one.
    };
    const onDone = (err: unknown) =>
      end(err ? { kind: 'failed', error: asError(err) } : { kind: 'closed' });
    this.watcher.watch(path, query, onLine, onDone).then(
      (c) => {
        controller = c;
        if (over) c.abort();
      },
      (err: unknown) => end({ kind: 'failed', error: asError(err) }),
    );
    return { ended, stop: onStop };
  }

  /** Request options: a timeout, and the watcher's stop. */
  private bounded(): ConfigurationOptions {
    const signal = AbortSignal.any([this.stopped, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
    const withSignal: ObservableMiddleware = {
      pre: (ctx) => {
        ctx.setSignal(signal);
        return new Observable(Promise.resolve(ctx));
      },
      post: (ctx) => new Observable(Promise.resolve(ctx)),
    };
    return { middleware: [withSignal], middlewareMergeStrategy: 'append' };
  }
}
