// The pod watcher (--kube): the fallback to the deletion webhook. It judges only what it saw,
// and only from fresh views (issue 11, point 8):
//   - In each watched scope (a namespace, or the whole cluster) it LISTs, then WATCHes from
//     that list's resourceVersion; when the watch ends, for any reason (410 Gone, another
//     error, a dropped connection, the server's timeout), it LISTs again before watching.
//     It never resumes from an older resourceVersion: a view rebuilt from one can miss pods.
//   - A view of a pod with its containers stopped (phase Succeeded or Failed, or every
//     container terminated) releases it as `confirmed`. Phase Unknown never counts as stopped.
//   - A DELETED event releases the pod with the UID it carried: `confirmed` if its last status
//     shows the containers stopped, else `forced` (fenced: kubernetes#73470).
//   - A pod the lists no longer show is released (with its last UID; `confirmed` only if its
//     last view was stopped, else `forced`) only if the watcher saw it (its UID is known), it
//     is in a served namespace, and two LISTs that both succeeded, at least --kube-grace
//     apart, missed it. A failed list counts for nothing.
//   - With --label-selector, leaving the selection is not leaving the cluster: the API
//     server's watch reports a pod whose labels stop matching as DELETED, with its previous
//     (matching) content (apiserver cacher, cache_watcher.go convertToWatchEvent). So before a
//     release for a DELETED event or for absence, the watcher reads the pod by name,
//     unfiltered: a pod that is still there is never released.
// A pod recreated under the same name is the same identity: present, so never released; a
// stale event of an older incarnation carries its old UID, which the allocator ignores.
//
// Why not @kubernetes/client-node's ListWatch: after an error other than 410 its start()
// watches again from the last resourceVersion without listing, and its cache offers no way to
// force a relist nor to tell a fresh list from an old view.
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Allocator, ReleaseOptions } from '../allocation/allocator.js';
import { namespaceOf, podIdentity } from '../api/names.js';
import type { Monotonic } from '../clock.js';
import type { Logger } from '../log.js';
import type { StoreContract } from '../store/contract.js';
import { PodApi, type PodEventType } from './pod-api.js';
import { knownStopped, stopProof } from './pod-view.js';

export interface WatcherConfig {
  /** Namespaces to watch; empty: all. */
  readonly namespaces: readonly string[];
  readonly labelSelector: string | undefined;
  readonly graceMs: number;
  /** Path of a kubeconfig file; undefined: the in-cluster service account. */
  readonly kubeconfig: string | undefined;
}

export interface WatcherDeps {
  readonly store: StoreContract;
  readonly allocator: Allocator;
  /** Measures --kube-grace between lists: a step of the wall clock shortens nothing. */
  readonly monotonic: Monotonic;
  readonly log: Logger;
  /** Called each time a watch failed and the watcher lists again. */
  readonly onResync?: () => void;
}

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
/** A watch that lasted this long was healthy: the next list follows at once. */
const HEALTHY_WATCH_MS = 30_000;

export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig === undefined) kc.loadFromCluster();
  else kc.loadFromFile(kubeconfig);
  return kc;
}

/** One LIST+WATCH stream: a namespace, or every namespace. */
interface Scope {
  readonly namespace: string | undefined;
}

/** The watcher's last view of a pod. */
interface LastView {
  readonly uid: string;
  readonly stopped: boolean;
}

const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class PodWatcher {
  private readonly scopes: Scope[];
  private readonly abort = new AbortController();
  private readonly api: PodApi;
  /** Last view of each pod the watcher saw, by identity. */
  private readonly views = new Map<string, LastView>();
  /** When (monotonic) a successful list first missed each held pod, since it was last seen. */
  private readonly missing = new Map<string, number>();
  /** Store changes and judgements run one at a time, in the order the views arrived. */
  private serial: Promise<void> = Promise.resolve();
  private readonly loops: Promise<void>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    kc: KubeConfig,
    private readonly config: WatcherConfig,
    private readonly deps: WatcherDeps,
  ) {
    this.api = new PodApi(kc, config.labelSelector || undefined, this.abort.signal);
    this.scopes =
      config.namespaces.length > 0
        ? config.namespaces.map((namespace) => ({ namespace }))
        : [{ namespace: undefined }];
  }

  /** Lists every scope once (failing if any list fails), then watches them. */
  async start(): Promise<void> {
    const first: string[] = [];
    for (const scope of this.scopes) first.push(await this.listScope(scope));
    this.scopes.forEach((scope, i) => {
      this.loops.push(this.follow(scope, first[i]));
    });
    const every = Math.max(500, Math.floor(this.config.graceMs / 2));
    this.timer = setInterval(() => {
      if (this.checking) return;
      this.checking = true;
      this.check()
        .catch((err: unknown) => this.deps.log.warn({ err: errText(err) }, 'pod check failed'))
        .finally(() => {
          this.checking = false;
        });
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.abort.abort();
    await Promise.all(this.loops);
    await this.serial;
  }

  /**
   * Lists every scope afresh and judges absence from it (the timer calls it every half
   * --kube-grace). Returns whether every list succeeded; a failed one counts for nothing.
   */
  async check(): Promise<boolean> {
    let all = true;
    for (const scope of this.scopes) {
      if (this.abort.signal.aborted) return false;
      try {
        await this.listScope(scope);
      } catch (err) {
        all = false;
        this.deps.log.warn(
          { err: errText(err), namespace: scope.namespace },
          'pod list failed: it counts for nothing',
        );
      }
    }
    return all;
  }

  /** Watch from `from`; whenever the watch ends, list again (with backoff after failures). */
  private async follow(scope: Scope, from: string | undefined): Promise<void> {
    let resourceVersion = from;
    let backoff = FIRST_BACKOFF_MS;
    const wait = async () => {
      await sleep(backoff, undefined, { signal: this.abort.signal, ref: false }).catch(() => {});
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    };
    while (!this.abort.signal.aborted) {
      if (resourceVersion === undefined) {
        try {
          resourceVersion = await this.listScope(scope);
        } catch (err) {
          if (this.abort.signal.aborted) break;
          this.deps.log.warn(
            { err: errText(err), namespace: scope.namespace, waitMs: backoff },
            'pod list failed; listing again',
          );
          await wait();
          continue;
        }
      }
      const began = performance.now();
      const watch = this.api.watch(scope.namespace, resourceVersion, (type, pod) => {
        void this.enqueue(() => this.onEvent(type, pod));
      });
      const end = await watch.ended;
      resourceVersion = undefined; // whatever happened, the next view starts from a fresh list
      if (end.kind === 'stopped') break;
      const healthy = end.kind === 'closed' && performance.now() - began >= HEALTHY_WATCH_MS;
      if (healthy) {
        backoff = FIRST_BACKOFF_MS;
        continue;
      }
      this.deps.log.warn(
        {
          err: end.kind === 'failed' ? end.error.message : 'closed early',
          namespace: scope.namespace,
          waitMs: backoff,
        },
        'pod watch failed; listing again',
      );
      this.deps.onResync?.();
      await wait();
    }
  }

  /** A fresh LIST of `scope`, judged in order with the events; returns its resourceVersion. */
  private async listScope(scope: Scope): Promise<string> {
    const sentAt = this.deps.monotonic();
    const list = await this.api.list(scope.namespace);
    const receivedAt = this.deps.monotonic();
    await this.enqueue(() => this.onList(scope, list.items, sentAt, receivedAt));
    return list.resourceVersion;
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.serial.then(op).catch((err: unknown) => {
      this.deps.log.error({ err: errText(err) }, 'pod watcher: a change was not applied');
    });
    this.serial = next;
    return next;
  }

  private async onEvent(type: PodEventType, pod: V1Pod): Promise<void> {
    const seen = this.identify(pod);
    if (!seen) return;
    if (type === 'DELETED') await this.onDeleted(seen.identity, seen.uid, pod);
    else await this.see(seen.identity, seen.uid, pod);
  }

  /** A pod the API server shows: remember it; release it if its containers are stopped. */
  private async see(identity: string, uid: string, pod: V1Pod): Promise<void> {
    const stopped = knownStopped(pod);
    this.views.set(identity, { uid, stopped });
    this.missing.delete(identity);
    if (stopped) {
      await this.release(identity, { stop: 'confirmed', uid }, `stopped (${pod.status?.phase})`);
    } else {
      await this.deps.allocator.recordUid(identity, uid);
    }
  }

  private async onDeleted(identity: string, uid: string, pod: V1Pod): Promise<void> {
    const stop = stopProof(pod);
    // One watch delivers a name's events in order (the old incarnation's DELETED before the new
    // one's ADDED), and the watcher never replays an old stream; so a DELETED for another UID
    // than the one it sees now is a late event of an older incarnation: it changes nothing.
    // (The allocator, given the UID, would also ignore it for a holder it knows.)
    const current = this.views.get(identity);
    if (current !== undefined && current.uid !== uid) {
      this.deps.log.info({ pod: identity, uid }, 'DELETED event of an older incarnation ignored');
      return;
    }
    this.views.set(identity, { uid, stopped: stop === 'confirmed' });
    if ((await this.deps.allocator.podKeys(identity)).length === 0) return;
    if (this.config.labelSelector && (await this.stillThere(identity, uid))) return;
    await this.release(identity, { stop, uid }, 'deleted');
  }

  /**
   * With a label selector, whether the pod (this incarnation) still exists: then it only
   * left the selection. A failed read counts as there; the lists judge it later.
   */
  private async stillThere(identity: string, uid: string | undefined): Promise<boolean> {
    const namespace = namespaceOf(identity);
    const name = identity.slice(identity.indexOf('/') + 1);
    try {
      const now = await this.api.read(namespace, name);
      if (now === undefined) return false;
      if (uid !== undefined && now.metadata?.uid !== undefined && now.metadata.uid !== uid)
        return false; // only a newer incarnation: the one we saw is gone
      this.deps.log.info(
        { pod: identity },
        'pod left the label selection but still exists: keeps its keys',
      );
      return true;
    } catch (err) {
      this.deps.log.warn({ err: errText(err), pod: identity }, 'pod read failed: keeps its keys');
      return true;
    }
  }

  private async onList(
    scope: Scope,
    items: readonly V1Pod[],
    sentAt: number,
    receivedAt: number,
  ): Promise<void> {
    const present = new Set<string>();
    for (const pod of items) {
      const seen = this.identify(pod);
      if (!seen) continue;
      present.add(seen.identity);
      await this.see(seen.identity, seen.uid, pod);
    }
    await this.judgeAbsence(scope, present, sentAt, receivedAt);
  }

  /** Held pods of `scope` this list missed: released after two lists --kube-grace apart. */
  private async judgeAbsence(
    scope: Scope,
    present: ReadonlySet<string>,
    sentAt: number,
    receivedAt: number,
  ): Promise<void> {
    const due: Array<{ identity: string; uid: string }> = [];
    const held = new Set<string>();
    for await (const [identity, record] of this.deps.store.pods()) {
      if (record.keys.length === 0 || !this.covers(scope, identity)) continue;
      held.add(identity);
      if (present.has(identity)) {
        this.missing.delete(identity);
        continue;
      }
      // Never seen by a watcher: its absence from a list proves nothing about it.
      const uid = this.views.get(identity)?.uid ?? record.uid;
      if (uid === undefined) continue;
      const since = this.missing.get(identity);
      // The first list that missed it counts from when its answer came, the later one from
      // when it was asked: the two views are at least this far apart.
      if (since === undefined) this.missing.set(identity, receivedAt);
      else if (sentAt - since >= this.config.graceMs) due.push({ identity, uid });
    }
    // Forget what no longer matters: pods of this scope neither held nor listed.
    for (const identity of this.missing.keys())
      if (this.covers(scope, identity) && !held.has(identity)) this.missing.delete(identity);
    for (const identity of this.views.keys())
      if (this.covers(scope, identity) && !held.has(identity) && !present.has(identity))
        this.views.delete(identity);
    for (const { identity, uid } of due) {
      if (this.config.labelSelector && (await this.stillThere(identity, undefined))) {
        this.missing.delete(identity);
        continue;
      }
      const stop = this.views.get(identity)?.stopped ? 'confirmed' : 'forced';
      await this.release(identity, { stop, uid }, 'absent from two lists');
    }
  }

  private covers(scope: Scope, identity: string): boolean {
    return scope.namespace === undefined || namespaceOf(identity) === scope.namespace;
  }

  private identify(pod: V1Pod): { identity: string; uid: string } | undefined {
    const name = pod.metadata?.name;
    const uid = pod.metadata?.uid;
    if (!name || !uid) return undefined;
    return { identity: podIdentity(pod.metadata?.namespace, name), uid };
  }

  private async release(identity: string, opts: ReleaseOptions, why: string): Promise<void> {
    const released = await this.deps.allocator.release(identity, opts);
    this.missing.delete(identity);
    if (released.length > 0)
      this.deps.log.info(
        { pod: identity, released: released.length, stop: opts.stop, uid: opts.uid, why },
        'pod watcher released keys',
      );
  }
}
