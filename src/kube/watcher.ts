// The pod watcher (--kube): the fallback to the deletion webhook. It lists, then watches pods
// with @kubernetes/client-node's informer (which re-lists after a 410 Gone), and:
//   - releases a pod whose phase is Succeeded or Failed (it has stopped for good);
//   - releases a pod the cluster no longer has only once it was absent in two checks at least
//     --kube-grace apart, so a pod that is briefly invisible (a restart, a slow list) keeps
//     its keys;
//   - never releases a pod in phase Unknown (its node is cut off; it may still be signing).
// A pod recreated under the same name is the same identity: present, so never released.
import { CoreV1Api, KubeConfig, ListWatch, type V1Pod, Watch } from '@kubernetes/client-node';
import type { Allocator } from '../allocation/allocator.js';
import type { Clock } from '../allocation/clock.js';
import { namespaceOf, podIdentity } from '../allocation/pod-name.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';

export interface WatcherConfig {
  /** Namespaces to watch; empty: all. */
  readonly namespaces: readonly string[];
  readonly labelSelector: string | undefined;
  readonly graceMs: number;
  /** Path of a kubeconfig file; undefined: the in-cluster service account. */
  readonly kubeconfig: string | undefined;
}

export interface WatcherDeps {
  readonly store: Store;
  readonly allocator: Allocator;
  readonly clock: Clock;
  readonly log: Logger;
  readonly onResync?: () => void;
}

const TERMINAL = new Set(['Succeeded', 'Failed']);
const MAX_BACKOFF_MS = 30_000;

export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig === undefined) kc.loadFromCluster();
  else kc.loadFromFile(kubeconfig);
  return kc;
}

type PodInformer = ListWatch<V1Pod>;

export class PodWatcher {
  private readonly informers: PodInformer[] = [];
  /** When each held pod was first seen absent from a synced cache. */
  private readonly absentSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly config: WatcherConfig,
    private readonly deps: WatcherDeps,
  ) {}

  async start(): Promise<void> {
    const api = this.kc.makeApiClient(CoreV1Api);
    const { labelSelector } = this.config;
    const scopes = this.config.namespaces.length > 0 ? this.config.namespaces : [undefined];
    for (const namespace of scopes) {
      const path =
        namespace === undefined ? '/api/v1/pods' : `/api/v1/namespaces/${namespace}/pods`;
      const list = () =>
        namespace === undefined
          ? api.listPodForAllNamespaces({ ...(labelSelector ? { labelSelector } : {}) })
          : api.listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) });
      // Not started by the constructor: handlers first, then start().
      const informer = new ListWatch<V1Pod>(path, new Watch(this.kc), list, false, labelSelector);
      informer.on('add', (pod) => this.onPod(pod));
      informer.on('update', (pod) => this.onPod(pod));
      informer.on('error', (err) => this.restart(informer, err, 1000));
      this.informers.push(informer);
      await informer.start();
    }
    const every = Math.max(500, Math.floor(this.config.graceMs / 2));
    this.timer = setInterval(() => {
      this.check().catch((err: unknown) => this.deps.log.warn({ err }, 'pod watcher check failed'));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** Watch errors: list and watch again after a growing wait. */
  private restart(informer: PodInformer, err: unknown, waitMs: number): void {
    if (this.stopped) return;
    this.deps.log.warn({ err: (err as Error)?.message, waitMs }, 'pod watch failed; listing again');
    this.deps.onResync?.();
    setTimeout(() => {
      if (this.stopped) return;
      informer
        .start()
        .catch((e: unknown) => this.restart(informer, e, Math.min(MAX_BACKOFF_MS, waitMs * 2)));
    }, waitMs).unref();
  }

  private onPod(pod: V1Pod): void {
    const phase = pod.status?.phase;
    const name = pod.metadata?.name;
    const uid = pod.metadata?.uid;
    if (name && uid && !TERMINAL.has(phase ?? '')) {
      const identity = podIdentity(pod.metadata?.namespace, name);
      this.deps.allocator
        .recordUid(identity, uid)
        .catch((err: unknown) => this.deps.log.warn({ err, pod: identity }, 'UID not recorded'));
    }
    if (!name || !phase || !TERMINAL.has(phase)) return;
    const identity = podIdentity(pod.metadata?.namespace, name);
    this.release(identity, `phase ${phase}`).catch((err: unknown) =>
      this.deps.log.error({ err, pod: identity }, 'release failed'),
    );
  }

  /** Held pods missing from every synced cache, released once absent for the grace period. */
  async check(): Promise<void> {
    if (this.informers.some((i) => i.latestResourceVersion() === '')) return; // not listed yet
    const present = new Set<string>();
    for (const informer of this.informers) {
      for (const pod of informer.list()) {
        if (pod.metadata?.name) present.add(podIdentity(pod.metadata.namespace, pod.metadata.name));
      }
    }
    const now = this.deps.clock();
    const watched = this.config.namespaces;
    for await (const [identity, record] of this.deps.store.pods()) {
      if (record.keys.length === 0) continue;
      if (watched.length > 0 && !watched.includes(namespaceOf(identity))) continue;
      if (present.has(identity)) {
        this.absentSince.delete(identity);
        continue;
      }
      const since = this.absentSince.get(identity);
      if (since === undefined) this.absentSince.set(identity, now);
      else if (now - since >= this.config.graceMs)
        await this.release(identity, 'gone from the cluster');
    }
  }

  private async release(identity: string, why: string): Promise<void> {
    const released = await this.deps.allocator.release(identity);
    this.absentSince.delete(identity);
    if (released.length > 0)
      this.deps.log.info(
        { pod: identity, released: released.length, why },
        'pod watcher released keys',
      );
  }
}
