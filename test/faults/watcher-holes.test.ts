// Faults an adversarial review found in the pod watcher (issue 11), kept as regression tests:
// each asserts the safe behaviour.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Allocator } from '../../src/allocation/allocator.js';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { loadKubeConfig, PodWatcher } from '../../src/kube/watcher.js';
import { createLogger } from '../../src/log.js';
import { FakeClock, MINUTE, onCleanup, openTempStore, tempDir, until } from '../helpers.js';
import { type FakeContainer, FakeKubeApi, type FakePod } from '../kube/fake-api.js';

const GRACE = MINUTE;
const DELAY = 20 * MINUTE;

async function setup(pods: FakePod[], held: Record<string, string>) {
  const api = new FakeKubeApi();
  await api.start();
  onCleanup(() => api.stop());
  for (const p of pods) api.upsert(p);
  const store = await openTempStore();
  const clock = new FakeClock();
  const allocator = new Allocator({
    store,
    group: GroupCommitter.of(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    keySource: randomKeySource,
    config: { reuseDelayMs: DELAY, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  for (const [identity, uid] of Object.entries(held)) await allocator.allocate(identity, 1, uid);
  const release = vi.spyOn(allocator, 'release');
  const kubeconfig = join(await tempDir(), 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigYaml());
  const watcher = new PodWatcher(
    loadKubeConfig(kubeconfig),
    { namespaces: ['validators'], labelSelector: undefined, graceMs: GRACE, kubeconfig },
    { store, allocator, monotonic: clock.monotonic, log: createLogger('silent') },
  );
  await watcher.start();
  onCleanup(() => watcher.stop());
  return { api, store, clock, allocator, watcher, release };
}

const pod = (
  name: string,
  uid: string,
  containers: FakeContainer[],
  phase: FakePod['phase'] = 'Running',
): FakePod => ({
  name,
  namespace: 'validators',
  uid,
  phase,
  labels: { app: 'validator' },
  containers,
});
const running: FakeContainer[] = [
  { name: 'fetch-keys', kind: 'init', state: 'terminated' },
  { name: 'validator', state: 'running' },
];
const crashed: FakeContainer[] = [
  { name: 'fetch-keys', kind: 'init', state: 'terminated' },
  { name: 'validator', state: 'terminated' },
];

describe('break: pod watcher', () => {
  it('W1 a StatefulSet pod (restartPolicy Always) whose only container exits once is not released: the kubelet restarts it with the same keystores', async () => {
    const { api, clock, allocator, release } = await setup([pod('v-0', 'uid-1', running)], {
      'validators/v-0': 'uid-1',
    });
    const keys = await allocator.podKeys('validators/v-0');
    // the VC crashes: state terminated for a moment, phase still Running, then restarted
    api.upsert(pod('v-0', 'uid-1', crashed));
    await until(async () => release.mock.calls.length > 0, 3000).catch(() => undefined);
    api.upsert(pod('v-0', 'uid-1', running));
    await new Promise((r) => setTimeout(r, 300));
    clock.advance(DELAY);
    const other = await allocator.allocate('validators/other', 1);
    expect(other.keys[0]?.pubkey).not.toBe(keys[0]);
  });

  it('W2 a forced deletion the watcher missed (watch error), then the pod recreated: the old incarnation is fenced, not its keys relabelled to the new uid', async () => {
    const { api, allocator, store } = await setup([pod('v-0', 'uid-1', running)], {
      'validators/v-0': 'uid-1',
    });
    const keys = await allocator.podKeys('validators/v-0');
    await until(() => api.watches.length === 1);
    // the watch breaks; meanwhile v-0 is force-deleted (its node cut off) and recreated
    api.endWatches(500);
    api.remove('validators', 'v-0');
    api.upsert(pod('v-0', 'uid-2', running));
    // The relist shows another UID under the name: the old incarnation's keys are fenced.
    await until(async () => (await store.getKey(keys[0] ?? ''))?.stop === 'fenced');
    // the new incarnation asks: it gets the keys the old one may still run
    const got = await allocator.allocate('validators/v-0', 1, 'uid-2');
    expect(got.keys[0]?.pubkey).not.toBe(keys[0]);
  });
});
