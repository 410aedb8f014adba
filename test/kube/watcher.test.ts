import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Allocator, type ReleaseOptions } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { loadKubeConfig, PodWatcher } from '../../src/kube/watcher.js';
import { createLogger } from '../../src/log.js';
import { FakeClock, MINUTE, onCleanup, openTempStore, tempDir, until } from '../helpers.js';
import { type FakeContainer, FakeKubeApi, type FakePod } from './fake-api.js';

const GRACE = MINUTE;

async function setup(
  opts: {
    labelSelector?: string;
    pods?: FakePod[];
    held?: string[];
    /** UIDs a watcher recorded before this one started (a restart of the server, say). */
    uids?: Record<string, string>;
  } = {},
) {
  const api = new FakeKubeApi();
  await api.start();
  onCleanup(() => api.stop());
  for (const pod of opts.pods ?? []) api.upsert(pod);
  const store = await openTempStore();
  const clock = new FakeClock();
  const allocator = new Allocator({
    store,
    group: GroupCommitter.of(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    keySource: randomKeySource,
    config: { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  for (const identity of opts.held ?? []) await allocator.allocate(identity, 1);
  for (const [identity, uid] of Object.entries(opts.uids ?? {}))
    await allocator.recordUid(identity, uid);
  // The real allocator, with a record of how each release was asked for.
  const release = vi.spyOn(allocator, 'release');
  const releases = (identity: string): Array<ReleaseOptions | undefined> =>
    release.mock.calls.filter(([pod]) => pod === identity).map(([, o]) => o);
  const kubeconfig = join(await tempDir(), 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigYaml());
  let resyncs = 0;
  const watcher = new PodWatcher(
    loadKubeConfig(kubeconfig),
    { namespaces: ['validators'], labelSelector: opts.labelSelector, graceMs: GRACE, kubeconfig },
    {
      store,
      allocator,
      monotonic: clock.monotonic,
      log: createLogger('silent'),
      onResync: () => resyncs++,
    },
  );
  await watcher.start();
  onCleanup(() => watcher.stop());
  return { api, store, clock, allocator, watcher, releases, resyncs: () => resyncs };
}

const pod = (
  name: string,
  phase: FakePod['phase'] = 'Running',
  uid = `${name}-uid-1`,
  containers?: FakeContainer[],
): FakePod => ({
  name,
  namespace: 'validators',
  uid,
  phase,
  labels: { app: 'validator' },
  ...(containers ? { containers } : {}),
});

const running: FakeContainer[] = [
  { name: 'fetch-keys', kind: 'init', state: 'terminated' },
  { name: 'validator', state: 'running' },
];
const terminated: FakeContainer[] = [
  { name: 'fetch-keys', kind: 'init', state: 'terminated' },
  { name: 'validator', state: 'terminated' },
];

const holds = async (allocator: Allocator, identity: string) =>
  (await allocator.podKeys(identity)).length > 0;

/** Every watch started from the resourceVersion a successful list had just answered. */
function watchesFollowFreshLists(api: FakeKubeApi): void {
  const listed = api.lists.flatMap((l) => (l.resourceVersion ? [l.resourceVersion] : []));
  for (const w of api.watches) expect(listed).toContain(w.resourceVersion);
}

describe('pod watcher (against a fake API server)', () => {
  it('lists with the label selector, watches from that list, and releases a pod that reaches Succeeded or Failed as confirmed, with its UID', async () => {
    const { api, allocator, releases } = await setup({
      labelSelector: 'app=validator',
      pods: [pod('v-0'), pod('v-1')],
      held: ['validators/v-0', 'validators/v-1'],
    });
    expect(api.lists).toEqual([
      { namespace: 'validators', labelSelector: 'app=validator', resourceVersion: '3' },
    ]);
    await until(() => api.watches.length === 1);
    expect(api.watches[0]).toEqual({
      namespace: 'validators',
      labelSelector: 'app=validator',
      resourceVersion: '3',
    });
    api.upsert(pod('v-0', 'Succeeded'));
    api.upsert(pod('v-1', 'Failed'));
    await until(
      async () =>
        !(await holds(allocator, 'validators/v-0')) && !(await holds(allocator, 'validators/v-1')),
    );
    expect(releases('validators/v-0')).toEqual([{ stop: 'confirmed', uid: 'v-0-uid-1' }]);
    expect(releases('validators/v-1')).toEqual([{ stop: 'confirmed', uid: 'v-1-uid-1' }]);
  });

  it('releases as confirmed a pod being deleted whose every container terminated; not one with a container waiting after a start', async () => {
    const { api, allocator, releases } = await setup({
      pods: [pod('v-0', 'Running', undefined, running), pod('v-1', 'Running', undefined, running)],
      held: ['validators/v-0', 'validators/v-1'],
    });
    const crashLooping: FakeContainer[] = [
      { name: 'fetch-keys', kind: 'init', state: 'terminated' },
      { name: 'validator', state: 'waiting', restarted: true },
    ];
    api.upsert({ ...pod('v-1', 'Running', undefined, crashLooping), deleting: true });
    // Terminating: the kubelet stopped its containers and restarts none (phase not yet updated).
    api.upsert({ ...pod('v-0', 'Running', undefined, terminated), deleting: true });
    // Events are handled in order: once v-0 is released, v-1's change was judged too.
    await until(async () => !(await holds(allocator, 'validators/v-0')));
    expect(releases('validators/v-0')).toEqual([{ stop: 'confirmed', uid: 'v-0-uid-1' }]);
    expect(releases('validators/v-1')).toEqual([]);
    expect(await holds(allocator, 'validators/v-1')).toBe(true);
  });

  it('never releases a pod in phase Unknown (its node is cut off), even if its last statuses read terminated', async () => {
    const { api, allocator, watcher, clock, releases } = await setup({
      pods: [pod('v-0'), pod('v-1')],
      held: ['validators/v-0', 'validators/v-1'],
    });
    api.upsert(pod('v-0', 'Unknown', undefined, terminated));
    api.upsert(pod('v-1', 'Succeeded'));
    await until(async () => !(await holds(allocator, 'validators/v-1')));
    expect(await watcher.check()).toBe(true);
    clock.advance(10 * GRACE);
    expect(await watcher.check()).toBe(true);
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    expect(releases('validators/v-0')).toEqual([]);
  });

  it('a DELETED event whose last status shows a container running, waiting after a start, or phase Unknown: forced, with its UID', async () => {
    const { api, allocator, releases } = await setup({
      pods: [pod('v-0', 'Running', undefined, running), pod('v-1'), pod('v-2')],
      held: ['validators/v-0', 'validators/v-1', 'validators/v-2'],
    });
    api.remove('validators', 'v-0'); // e.g. kubectl delete --force: the kubelet may still run it
    api.remove('validators', 'v-1', {
      containers: [{ name: 'validator', state: 'waiting', restarted: true }],
    });
    api.remove('validators', 'v-2', { phase: 'Unknown', containers: terminated });
    await until(async () => !(await holds(allocator, 'validators/v-2')));
    expect(releases('validators/v-0')).toEqual([{ stop: 'forced', uid: 'v-0-uid-1' }]);
    expect(releases('validators/v-1')).toEqual([{ stop: 'forced', uid: 'v-1-uid-1' }]);
    expect(releases('validators/v-2')).toEqual([{ stop: 'forced', uid: 'v-2-uid-1' }]);
    expect(await holds(allocator, 'validators/v-0')).toBe(false);
  });

  it('a DELETED event whose last status shows every container terminated: confirmed, with its UID', async () => {
    const { api, allocator, releases } = await setup({
      pods: [pod('v-0', 'Running', undefined, running)],
      held: ['validators/v-0'],
    });
    api.remove('validators', 'v-0', { containers: terminated, deleting: true });
    await until(async () => !(await holds(allocator, 'validators/v-0')));
    expect(releases('validators/v-0')).toEqual([{ stop: 'confirmed', uid: 'v-0-uid-1' }]);
  });

  it('a stale DELETED event of an older incarnation releases nothing', async () => {
    const { api, allocator, store, releases } = await setup({
      pods: [pod('v-0', 'Running', 'v-0-uid-2'), pod('v-1')],
      held: ['validators/v-0', 'validators/v-1', 'validators/w-0'],
      // w-0's current incarnation is not in the cluster now; the store knows its UID.
      uids: { 'validators/w-0': 'w-0-uid-2' },
    });
    await until(async () => (await store.getPod('validators/v-0'))?.uid === 'v-0-uid-2');
    await until(() => api.watches.length === 1); // the stale events go to open watches only
    api.staleEvent('DELETED', pod('v-0', 'Running', 'v-0-uid-1'));
    api.staleEvent('DELETED', pod('w-0', 'Running', 'w-0-uid-1'));
    api.upsert(pod('v-1', 'Succeeded')); // handled after the stale events
    await until(async () => !(await holds(allocator, 'validators/v-1')));
    // The watcher sees v-0's newer incarnation: it does not even ask.
    expect(releases('validators/v-0')).toEqual([]);
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    expect((await store.getPod('validators/v-0'))?.uid).toBe('v-0-uid-2');
    // For w-0 it asks with the UID the event carried, and the allocator keeps its holder.
    expect(releases('validators/w-0')).toEqual([{ stop: 'forced', uid: 'w-0-uid-1' }]);
    expect(await holds(allocator, 'validators/w-0')).toBe(true);
  });

  it('after the watch fails with a 500, lists again and watches from that list; a pod created meanwhile is seen and never released', async () => {
    const { api, allocator, store, watcher, clock, releases, resyncs } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    await until(() => api.watches.length === 1);
    api.failWatches = 1; // the first watch after the error is refused too
    api.endWatches(500);
    api.upsert(pod('v-1'));
    await allocator.allocate('validators/v-1', 1);
    await until(() => api.lists.length === 3 && api.watches.length === 3, 10_000);
    expect(resyncs()).toBe(2);
    watchesFollowFreshLists(api);
    await until(async () => (await store.getPod('validators/v-1'))?.uid === 'v-1-uid-1');
    for (let i = 0; i < 3; i++) {
      expect(await watcher.check()).toBe(true);
      clock.advance(GRACE);
    }
    expect(await holds(allocator, 'validators/v-1')).toBe(true);
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    expect(releases('validators/v-1')).toEqual([]);
    expect(releases('validators/v-0')).toEqual([]);
  }, 20_000);

  it('after a dropped watch connection, lists again; a pod created meanwhile is seen and never released', async () => {
    const { api, allocator, store, watcher, clock, releases } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    await until(() => api.watches.length === 1);
    api.dropWatches();
    api.upsert(pod('v-1'));
    await allocator.allocate('validators/v-1', 1);
    await until(() => api.lists.length === 2 && api.watches.length === 2, 10_000);
    watchesFollowFreshLists(api);
    await until(async () => (await store.getPod('validators/v-1'))?.uid === 'v-1-uid-1');
    // And the new watch follows changes.
    api.upsert(pod('v-0', 'Failed'));
    await until(async () => !(await holds(allocator, 'validators/v-0')));
    for (let i = 0; i < 3; i++) {
      expect(await watcher.check()).toBe(true);
      clock.advance(GRACE);
    }
    expect(await holds(allocator, 'validators/v-1')).toBe(true);
    expect(releases('validators/v-1')).toEqual([]);
  }, 20_000);

  it('releases a pod the lists miss only after two successful lists --kube-grace apart; a failed list counts for nothing', async () => {
    const { api, allocator, watcher, clock, releases } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0', 'validators/old-0'],
      uids: { 'validators/old-0': 'old-0-uid-1' },
    });
    // The start's list is the first that missed old-0.
    clock.advance(GRACE - 1);
    expect(await watcher.check()).toBe(true);
    expect(await holds(allocator, 'validators/old-0')).toBe(true);
    clock.advance(1);
    api.failLists = 1;
    expect(await watcher.check()).toBe(false);
    expect(await holds(allocator, 'validators/old-0')).toBe(true);
    expect(await watcher.check()).toBe(true);
    expect(await holds(allocator, 'validators/old-0')).toBe(false);
    expect(releases('validators/old-0')).toEqual([{ stop: 'forced', uid: 'old-0-uid-1' }]);
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
  });

  it('never releases for absence a pod no watcher saw, nor one outside the served namespaces', async () => {
    const { allocator, watcher, clock, releases } = await setup({
      held: ['validators/never-0', 'elsewhere/x-0'],
      uids: { 'elsewhere/x-0': 'x-0-uid-1' },
    });
    for (let i = 0; i < 3; i++) {
      expect(await watcher.check()).toBe(true);
      clock.advance(10 * GRACE);
    }
    expect(await holds(allocator, 'validators/never-0')).toBe(true);
    expect(await holds(allocator, 'elsewhere/x-0')).toBe(true);
    expect(releases('validators/never-0')).toEqual([]);
    expect(releases('elsewhere/x-0')).toEqual([]);
  });

  it('a pod recreated under its name with another UID is a new incarnation: the keys the old one held are fenced, never handed to it', async () => {
    const { api, allocator, store } = await setup({
      held: ['validators/v-0'],
      uids: { 'validators/v-0': 'v-0-uid-1' },
    });
    const [old] = await allocator.podKeys('validators/v-0');
    // The old incarnation went without a deletion the server saw (a missed webhook).
    api.upsert(pod('v-0', 'Pending', 'v-0-uid-2'));
    await until(async () => !(await holds(allocator, 'validators/v-0')));
    expect(await store.getKey(old ?? '')).toMatchObject({
      state: 'cooling',
      stop: 'fenced',
      uid: 'v-0-uid-1',
    });
    const fresh = await allocator.allocate('validators/v-0', 1, 'v-0-uid-2');
    expect(fresh.keys.map((k) => k.pubkey)).not.toContain(old);
  });

  it('with a label selector, never releases a running pod the selector does not match', async () => {
    const other: FakePod = { ...pod('other-0'), labels: { app: 'web' } };
    const { api, allocator, watcher, clock, releases } = await setup({
      labelSelector: 'app=validator',
      pods: [pod('v-0'), other],
      held: ['validators/v-0', 'validators/other-0'],
      // Even if a watcher once recorded its UID (under another selector, say).
      uids: { 'validators/other-0': 'other-0-uid-1' },
    });
    await until(() => api.watches.length === 1);
    // v-0 leaves the selection: the filtered watch reports it DELETED, with its old labels.
    api.upsert({ ...pod('v-0'), labels: { app: 'maintenance' } });
    await until(() => api.reads.includes('validators/v-0'));
    for (let i = 0; i < 3; i++) {
      expect(await watcher.check()).toBe(true);
      clock.advance(GRACE);
    }
    expect(await holds(allocator, 'validators/other-0')).toBe(true);
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    expect(releases('validators/other-0')).toEqual([]);
    expect(releases('validators/v-0')).toEqual([]);
    expect(api.reads).toContain('validators/other-0');
    // Once gone from the cluster (no event: it was outside the selection), lists at least
    // --kube-grace apart missed it and the read finds no pod: released, forced.
    api.remove('validators', 'v-0');
    expect(await watcher.check()).toBe(true);
    clock.advance(GRACE);
    expect(await watcher.check()).toBe(true);
    expect(releases('validators/v-0')).toEqual([{ stop: 'forced', uid: 'v-0-uid-1' }]);
    expect(await holds(allocator, 'validators/v-0')).toBe(false);
  });

  it('records the UID of the pod holding the keys, and the new one after a recreation', async () => {
    const { api, allocator, store } = await setup({ pods: [pod('v-0')], held: ['validators/v-0'] });
    await until(async () => (await store.getPod('validators/v-0'))?.uid === 'v-0-uid-1');
    api.remove('validators', 'v-0');
    await until(async () => !(await holds(allocator, 'validators/v-0')));
    api.upsert(pod('v-0', 'Pending', 'v-0-uid-2'));
    await allocator.allocate('validators/v-0', 1); // its init container asks again
    api.upsert(pod('v-0', 'Running', 'v-0-uid-2'));
    await until(async () => (await store.getPod('validators/v-0'))?.uid === 'v-0-uid-2');
  });

  it('after a failed list, lists again with backoff (counted as a resync)', async () => {
    const { api, allocator, resyncs } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    await until(() => api.watches.length === 1);
    api.failLists = 1;
    api.expire(); // the re-list that follows fails once
    await until(() => resyncs() === 1 && api.lists.length === 3, 8_000);
    api.upsert(pod('v-0', 'Failed'));
    await until(async () => !(await holds(allocator, 'validators/v-0')));
  }, 15_000);

  it('lists again after a 410 Gone and keeps following changes', async () => {
    const { api, allocator } = await setup({
      pods: [pod('v-0'), pod('v-1')],
      held: ['validators/v-0', 'validators/v-1'],
    });
    await until(() => api.watches.length === 1);
    api.expire();
    await until(() => api.lists.length === 2);
    api.upsert(pod('v-1', 'Failed'));
    await until(async () => !(await holds(allocator, 'validators/v-1')));
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    watchesFollowFreshLists(api);
  });
});
