import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { loadKubeConfig, PodWatcher } from '../../src/kube/watcher.js';
import { createLogger } from '../../src/log.js';
import { FakeClock, MINUTE, onCleanup, openTempStore, tempDir, until } from '../helpers.js';
import { FakeKubeApi, type FakePod } from './fake-api.js';

const GRACE = MINUTE;

async function setup(opts: { labelSelector?: string; pods?: FakePod[]; held?: string[] } = {}) {
  const api = new FakeKubeApi();
  await api.start();
  onCleanup(() => api.stop());
  for (const pod of opts.pods ?? []) api.upsert(pod);
  const store = await openTempStore();
  const clock = new FakeClock();
  const allocator = new Allocator({
    store,
    group: new GroupCommitter(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    keySource: randomKeySource,
    config: { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  for (const identity of opts.held ?? []) await allocator.allocate(identity, 1);
  const kubeconfig = join(await tempDir(), 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigYaml());
  let resyncs = 0;
  const watcher = new PodWatcher(
    loadKubeConfig(kubeconfig),
    { namespaces: ['validators'], labelSelector: opts.labelSelector, graceMs: GRACE, kubeconfig },
    { store, allocator, clock: clock.now, log: createLogger('silent'), onResync: () => resyncs++ },
  );
  await watcher.start();
  onCleanup(() => watcher.stop());
  return { api, store, clock, allocator, watcher, resyncs: () => resyncs };
}

const pod = (
  name: string,
  phase: FakePod['phase'] = 'Running',
  uid = `${name}-uid-1`,
): FakePod => ({
  name,
  namespace: 'validators',
  uid,
  phase,
  labels: { app: 'validator' },
});

const holds = async (allocator: Allocator, identity: string) =>
  (await allocator.podKeys(identity)).length > 0;

describe('pod watcher (against a fake API server)', () => {
  it('lists with the label selector, then releases a pod that reaches Succeeded or Failed', async () => {
    const { api, allocator } = await setup({
      labelSelector: 'app=validator',
      pods: [pod('v-0'), pod('v-1')],
      held: ['validators/v-0', 'validators/v-1'],
    });
    expect(api.lists).toEqual([{ namespace: 'validators', labelSelector: 'app=validator' }]);
    api.upsert(pod('v-0', 'Succeeded'));
    api.upsert(pod('v-1', 'Failed'));
    await until(
      async () =>
        !(await holds(allocator, 'validators/v-0')) && !(await holds(allocator, 'validators/v-1')),
    );
  });

  it('never releases a pod in phase Unknown (its node is cut off)', async () => {
    const { api, allocator, watcher, clock } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    api.upsert(pod('v-0', 'Unknown'));
    await new Promise((r) => setTimeout(r, 200));
    await watcher.check();
    clock.advance(10 * GRACE);
    await watcher.check();
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
  });

  it('releases a pod gone from the cluster only after two checks --kube-grace apart', async () => {
    const { api, allocator, watcher, clock } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    api.remove('validators', 'v-0');
    await new Promise((r) => setTimeout(r, 200));
    await watcher.check(); // first seen missing
    clock.advance(GRACE - 1);
    await watcher.check();
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    clock.advance(1);
    await watcher.check();
    expect(await holds(allocator, 'validators/v-0')).toBe(false);
  });

  it('keeps the keys of a pod that is only briefly missing, or recreated under its name', async () => {
    const { api, allocator, watcher, clock } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
    api.remove('validators', 'v-0');
    await new Promise((r) => setTimeout(r, 200));
    await watcher.check();
    api.upsert(pod('v-0', 'Pending', 'v-0-uid-2')); // a StatefulSet recreates it: a new UID, the same identity
    await new Promise((r) => setTimeout(r, 200));
    clock.advance(2 * GRACE);
    await watcher.check();
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
  });

  it('records the UID of the pod holding the keys, and the new one after a recreation', async () => {
    const { api, store } = await setup({ pods: [pod('v-0')], held: ['validators/v-0'] });
    await until(async () => (await store.getPod('validators/v-0'))?.uid === 'v-0-uid-1');
    api.remove('validators', 'v-0');
    api.upsert(pod('v-0', 'Pending', 'v-0-uid-2'));
    await until(async () => (await store.getPod('validators/v-0'))?.uid === 'v-0-uid-2');
  });

  it('at start-up, releases held pods the cluster does not have, after the grace period', async () => {
    const { allocator, watcher, clock } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0', 'validators/old-0', 'elsewhere/x-0'],
    });
    await watcher.check();
    clock.advance(GRACE);
    await watcher.check();
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
    expect(await holds(allocator, 'validators/old-0')).toBe(false);
    expect(await holds(allocator, 'elsewhere/x-0')).toBe(true); // not a watched namespace
  });

  it('after a failed list, lists again with backoff (counted as a resync)', async () => {
    const { api, allocator, resyncs } = await setup({
      pods: [pod('v-0')],
      held: ['validators/v-0'],
    });
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
    api.expire();
    await until(() => api.lists.length === 2);
    api.upsert(pod('v-1', 'Failed'));
    await until(async () => !(await holds(allocator, 'validators/v-1')));
    expect(await holds(allocator, 'validators/v-0')).toBe(true);
  });
});
