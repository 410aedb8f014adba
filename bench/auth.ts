// bench/auth: what authentication and encryption at rest cost an allocation. The same
// in-process server and load, in the same run, two ways:
//   plain:   secrets stored as hex (as a store before encryption), no tokens asked for;
//   secured: secrets sealed with AES-256-GCM under the KEK's data key, and every request
//            carrying its pod's own token, checked by TokenReview against a fake Kubernetes
//            API on 127.0.0.1 in another process (as the API server is in a cluster).
// "cold": each pod's request misses the review cache (a TokenReview each), as a freshly started
// pod's first request does; "warm": each token was reviewed once before (a pod asking again,
// its heartbeats), so the cached review answers.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { GroupCommitter } from '../src/allocation/group-commit.js';
import { KubeTokenReviewer } from '../src/kube/token-review.js';
import { createLogger } from '../src/log.js';
import { Auth } from '../src/server/auth.js';
import { composeApp } from '../src/server/root.js';
import { Store } from '../src/store/store.js';
import { seedKeys } from '../test/support/seed.js';
import { type LoadResult, load, report } from './lib.js';

const PODS = 1000;
const KEYS_PER_POD = 4;
const CONCURRENCY = 50;
const WARMUP = 200;
const ROUNDS = 3;
const KEK = Buffer.alloc(32, 0x6b);
const FAKE = new URL('./fake-kube-child.ts', import.meta.url).pathname;

interface FakeApi {
  readonly kubeconfig: string;
  readonly tokens: Record<string, string>;
  stop(): Promise<void>;
}

async function startFakeApi(): Promise<FakeApi> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', FAKE, `warmup:${WARMUP}`, `validator:${PODS}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const [line] = (await once(createInterface({ input: proc.stdout }), 'line')) as [string];
  const { kubeconfig, tokens } = JSON.parse(line) as {
    kubeconfig: string;
    tokens: Record<string, string>;
  };
  return {
    kubeconfig,
    tokens,
    async stop() {
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    },
  };
}

type Mode = 'plain' | 'cold' | 'warm';

/** With this process's CPU per request: the server's and the load generator's (the same in
 * every mode), not the fake API's. */
type Run = LoadResult & { readonly cpuUsPerRequest: number };

async function run(mode: Mode): Promise<Run> {
  const secured = mode !== 'plain';
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-auth-'));
  const api = await startFakeApi();
  const store = await Store.open(dir, { kek: async () => KEK });
  let server: Server | undefined;
  try {
    const seal = secured
      ? (s: Uint8Array, pk: string) => store.secrets.seal(s, pk)
      : (s: Uint8Array) => ({ alg: 'hex', data: Buffer.from(s).toString('hex') });
    await seedKeys(store, WARMUP + PODS * KEYS_PER_POD, seal);
    let auth: Auth | undefined;
    if (secured) {
      const kc = new KubeConfig();
      kc.loadFromString(api.kubeconfig);
      auth = new Auth({ adminTokens: [], reviewer: new KubeTokenReviewer(kc, 'pkm') });
    }
    const { app } = composeApp({
      store,
      group: GroupCommitter.of(store),
      log: createLogger('silent'),
      config: { reuseDelayMs: 20 * 60_000, maxKeysPerPod: 64, maxTotalKeys: undefined },
      ...(auth ? { auth } : {}),
    });
    const listening = app.listen(0, '127.0.0.1');
    server = listening;
    await new Promise<void>((resolve) => listening.once('listening', () => resolve()));
    const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    const tokens = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) =>
        secured ? { authorization: `Bearer ${api.tokens[`${prefix}-${i}`]}` } : {},
      );
    const warm = tokens('warmup', WARMUP);
    const real = tokens('validator', PODS);
    const one = JSON.stringify({ count: 1 });
    await load(
      url,
      (i) => `/v1/pods/warmup-${i}/keys`,
      one,
      WARMUP,
      CONCURRENCY,
      (i) => warm[i] ?? {},
    );
    if (mode === 'warm') {
      // Each pod's token reviewed once before (as by its first request or a heartbeat).
      for (let i = 0; i < PODS; i++) {
        const headers = real[i] ?? {};
        await fetch(`${url}/v1/pods/validator-${i}/keys`, { headers });
      }
    }
    const body = JSON.stringify({ count: KEYS_PER_POD });
    const cpu = process.cpuUsage();
    const result = await load(
      url,
      (i) => `/v1/pods/validator-${i}/keys`,
      body,
      PODS,
      CONCURRENCY,
      (i) => real[i] ?? {},
    );
    const used = process.cpuUsage(cpu);
    return { ...result, cpuUsPerRequest: (used.user + used.system) / PODS };
  } finally {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await store.close();
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function median(runs: Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.perSecond - b.perSecond);
  const mid = sorted[Math.floor(sorted.length / 2)];
  if (!mid) throw new Error('no runs');
  return mid;
}

const round = (n: number, digits = 0) => Number(n.toFixed(digits));

export async function benchAuthOverhead(): Promise<void> {
  const runs: Record<Mode, Run[]> = { plain: [], cold: [], warm: [] };
  for (let r = 0; r < ROUNDS; r++)
    for (const mode of ['plain', 'cold', 'warm'] as const) runs[mode].push(await run(mode));
  const plain = median(runs.plain);
  const warm = median(runs.warm);
  const secured = median(runs.cold);
  report({
    name: 'allocate_plain.allocations_per_s',
    value: round(plain.perSecond),
    unit: 'req/s',
  });
  report({
    name: 'allocate_secured_warm.allocations_per_s',
    value: round(warm.perSecond),
    unit: 'req/s',
    baseline: round(plain.perSecond),
    ratio: round(warm.perSecond / plain.perSecond, 2),
    target: 'ratio >= 0.8 (overhead < 20%)',
  });
  report({
    name: 'allocate_secured_warm.p99',
    value: round(warm.p99ms, 1),
    unit: 'ms',
    baseline: round(plain.p99ms, 1),
  });
  report({
    name: 'allocate_secured_cold.allocations_per_s',
    value: round(secured.perSecond),
    unit: 'req/s',
    baseline: round(plain.perSecond),
    ratio: round(secured.perSecond / plain.perSecond, 2),
    target: 'ratio >= 0.8 (overhead < 20%)',
  });
  report({
    name: 'allocate_secured_cold.p50',
    value: round(secured.p50ms, 1),
    unit: 'ms',
    baseline: round(plain.p50ms, 1),
  });
  report({
    name: 'allocate_secured_cold.p99',
    value: round(secured.p99ms, 1),
    unit: 'ms',
    baseline: round(plain.p99ms, 1),
  });
  for (const [mode, r] of [
    ['cold', secured],
    ['warm', warm],
  ] as const) {
    report({
      name: `allocate_secured_${mode}.cpu_us_per_request`,
      value: round(r.cpuUsPerRequest),
      unit: 'us',
      baseline: round(plain.cpuUsPerRequest),
      ratio: round(r.cpuUsPerRequest / plain.cpuUsPerRequest, 2),
    });
  }
}
