// Live key moves under crashes (issue 16, points 3 and 6): the built `pkm server` and three
// `pkm agent --keymanager-url` processes beside three fake validator clients that attest on a
// short clock. Counts change, keys move and rebalance, while agents and the server are killed
// with kill -9 at random points and started again. The witness (every fake's holdings and
// signatures, on one monotonic clock) must show no key in two VCs at any instant and no double
// vote; at the end, with everything running, every VC holds exactly what the server assigns
// its pod, and the store passes its invariant check. PKM_CHAOS_SEED=n replays a run.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import type { StoreContract } from '../../src/store/contract.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { Store } from '../../src/store/store.js';
import { freePort } from '../chain/node.js';
import { http, onCleanup, tempDir, until } from '../helpers.js';
import {
  assertNoKeyInTwoPlaces,
  type FakeSigner,
  type FakeVc,
  startFakeSigner,
  startFakeVc,
  Witness,
} from '../support/keymanager-peers/index.js';
import { findPostgres, type PgServer, usePostgres } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { type Child, runPkm, startServerProcess } from './spawn.js';

// mainnet's chain, so that the server (--network mainnet) fences and checks interchanges by it.
const ROOT = '0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95';
const GENESIS = 1606824023;
const PODS = ['p0', 'p1', 'p2'] as const;
const CHAOS_MS = 35_000;

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where the server keeps its store: its flags, and the store to check once it stopped. */
interface Backing {
  args(dir: string): Promise<string[]>;
  open(dir: string): Promise<StoreContract>;
}

const levelDb: Backing = {
  args: async (dir) => ['--data-dir', join(dir, 'data')],
  open: (dir) => Store.open(join(dir, 'data')),
};

async function chaos(remote: boolean, backing: Backing): Promise<void> {
  const seed = Number(process.env.PKM_CHAOS_SEED ?? Date.now() % 1_000_000);
  const rnd = random(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const dir = await tempDir();
  const witnessFile = join(dir, 'witness.jsonl');
  const listen = `127.0.0.1:${await freePort()}`;
  const url = `http://${listen}`;
  const serverArgs = [
    ...(await backing.args(dir)),
    '--listen',
    listen,
    '--network',
    'mainnet',
    '--reuse-delay',
    '1h',
    '--resync-window',
    '0',
    '--max-keys-per-pod',
    '12',
    // Each agent's pass is two requests every 150 ms, far past the default 60 a minute.
    '--rate-limit',
    '0',
  ];
  let server: Child = await startServerProcess(serverArgs);

  const vcs = new Map<string, FakeVc>();
  const signers = new Map<string, FakeSigner>();
  for (const pod of PODS) {
    const vc = await startFakeVc({
      name: `vc-${pod}`,
      witnessFile,
      dataDir: join(dir, `vc-${pod}`),
      genesisValidatorsRoot: ROOT,
      genesisTime: GENESIS,
      slotMs: 50, // an epoch every 1.6 s: attestations move on during the run
      attestEveryMs: 400,
      stepDelayMs: 20, // wider windows inside each import and delete for a kill to hit
    });
    onCleanup(() => vc.stop());
    vcs.set(pod, vc);
    if (!remote) continue;
    const signer = await startFakeSigner({
      name: `w3s-${pod}`,
      witnessFile,
      dataDir: join(dir, `w3s-${pod}`),
      genesisValidatorsRoot: ROOT,
      stepDelayMs: 20,
    });
    onCleanup(() => signer.stop());
    signers.set(pod, signer);
  }
  const agentArgs = (pod: string) => {
    const vc = vcs.get(pod);
    if (!vc) throw new Error(pod);
    return [
      'agent',
      '--server',
      url,
      '--pod',
      pod,
      '--out',
      join(dir, `agent-${pod}`),
      '--keymanager-url',
      vc.url,
      '--keymanager-token-file',
      vc.tokenFile,
      '--interval',
      '150ms',
      '--kdf',
      'pbkdf2',
      '--log-level',
      'warn',
      ...(remote ? ['--remote-signer-url', signers.get(pod)?.url ?? ''] : []),
    ];
  };
  const agents = new Map<string, Child>(PODS.map((p) => [p, runPkm(agentArgs(p))]));
  const admin = async (method: string, path: string, body: unknown) => {
    try {
      return (await http(url, method, path, body)).status;
    } catch {
      return 0; // the server is down: the step is skipped
    }
  };
  expect(await admin('PUT', '/v1/pods/p0/keys', { count: 6 })).toBe(200);
  expect(await admin('PUT', '/v1/pods/p1/keys', { count: 3 })).toBe(200);
  expect(await admin('PUT', '/v1/pods/p2/keys', { count: 1 })).toBe(200);

  const kills = { agent: 0, server: 0 };
  const steps: string[] = [];
  const end = Date.now() + CHAOS_MS;
  while (Date.now() < end) {
    const roll = rnd();
    const from = pick(PODS);
    const to = pick(PODS.filter((p) => p !== from));
    if (roll < 0.35) {
      const count = 1 + Math.floor(rnd() * 2);
      steps.push(
        `move ${from}->${to} ${count}: ${await admin('POST', '/v1/moves', { from, to, count })}`,
      );
    } else if (roll < 0.5) {
      steps.push(`rebalance: ${await admin('POST', '/v1/rebalance', { selector: 'p*' })}`);
    } else if (roll < 0.6) {
      const count = Math.floor(rnd() * 7);
      steps.push(`put ${from} ${count}: ${await admin('PUT', `/v1/pods/${from}/keys`, { count })}`);
    } else if (roll < 0.85) {
      // An agent dies at a random point of whatever it is doing, and comes back.
      await sleep(rnd() * 400);
      const victim = pick(PODS);
      agents.get(victim)?.proc.kill('SIGKILL');
      await agents.get(victim)?.exited;
      kills.agent++;
      steps.push(`kill -9 agent ${victim}`);
      await sleep(rnd() * 300);
      agents.set(victim, runPkm(agentArgs(victim)));
    } else {
      await sleep(rnd() * 400);
      server.proc.kill('SIGKILL');
      await server.exited;
      kills.server++;
      steps.push('kill -9 server');
      await sleep(rnd() * 500);
      server = await startServerProcess(serverArgs);
    }
    await sleep(100 + rnd() * 400);
  }

  // Everything runs again: each VC comes to hold exactly what the server assigns its pod.
  const assigned = async () =>
    (await http<{ pods: Record<string, string[]> }>(url, 'GET', '/v1/assignments')).body.pods;
  /** What can sign through a pod: its VC's keystores, or its signer's keys it registered. */
  const holding = (p: string): string[] => {
    const held = vcs.get(p)?.holdings();
    if (!remote) return [...(held?.local ?? [])].sort();
    const inSigner = new Set(signers.get(p)?.holdings() ?? []);
    const registered = (held?.remote ?? []).map((r) => r.pubkey);
    // Converged: registered exactly where stored.
    return registered.length === inSigner.size && registered.every((k) => inSigner.has(k))
      ? [...registered].sort()
      : ['(signer and VC differ)'];
  };
  /** Whether a key of the pod is still leaving (asked naming every key, so no secret comes). */
  const leaving = async (pod: string, keys: readonly string[]) =>
    (
      await http<{ keys: Array<{ leaving?: unknown }> }>(
        url,
        'POST',
        `/v1/pods/${pod}/assignment`,
        { have: keys },
      )
    ).body.keys.some((k) => k.leaving !== undefined);
  const converged = async () => {
    const pods = await assigned();
    for (const p of PODS) {
      const keys = [...(pods[p] ?? [])].sort();
      if (JSON.stringify(holding(p)) !== JSON.stringify(keys)) return false;
      if (await leaving(p, keys)) return false;
    }
    return true;
  };
  const settle = () =>
    until(converged, 60_000).then(
      () => true,
      () => false,
    );
  let settled = await settle();
  // One move with everything running, its VC holding the key: it must arrive with proof. The
  // chaos alone proves no such move: each of its removals may meet a crash that makes the VC's
  // answer not_found, and then the key cools (seed 463928, remote signers: 11 cooled, 0 moved).
  let final: string | undefined;
  if (settled) {
    const now = await assigned();
    const held = (p: string) => now[p]?.length ?? 0;
    let from = PODS.find((p) => held(p) > 0);
    if (from === undefined) {
      expect(await admin('PUT', '/v1/pods/p0/keys', { count: 2 })).toBe(200);
      settled = await settle();
      from = 'p0';
    }
    const to = [...PODS].filter((p) => p !== from).sort((a, b) => held(a) - held(b))[0] ?? 'p1';
    const move = await http<{ keys: string[] }>(url, 'POST', '/v1/moves', { from, to, count: 1 });
    expect(move.status).toBe(200);
    final = move.body.keys[0];
    steps.push(`final move ${from}->${to}: ${final}`);
    settled = settled && (await settle());
  }
  // The witness first: a key in two places is the failure that matters, whatever followed.
  try {
    assertNoKeyInTwoPlaces(new Witness(witnessFile));
  } catch (err) {
    throw new Error(`seed ${seed}: ${(err as Error).message}\nsteps: ${steps.join('; ')}`);
  }
  if (!settled) throw new Error(`seed ${seed}: no convergence; steps: ${steps.join('; ')}`);
  const inVcs = PODS.flatMap(holding);
  expect(new Set(inVcs).size).toBe(inVcs.length);
  expect(kills.agent + kills.server).toBeGreaterThan(3);
  // The run did move keys: with proof (move, remove) and, where the VC's answer lost in a
  // crash came back not_found, without (remove ... without proof).
  type Page = {
    events: Array<{ type: string; pubkeys: string[]; detail?: string }>;
    next: number;
  };
  const events: Page['events'] = [];
  for (let since = 0; ; ) {
    const page = (await http<Page>(url, 'GET', `/v1/events?since=${since}&limit=1000`)).body;
    events.push(...page.events);
    if (page.events.length === 0) break;
    since = page.next;
  }
  const count = (type: string, has = '') =>
    events
      .filter((e) => e.type === type && (e.detail ?? '').includes(has))
      .reduce((n, e) => n + e.pubkeys.length, 0);
  const moved = count('move');
  const summary = {
    seed,
    kills,
    moved,
    freed: count('remove', 'with proof'),
    cooled: count('remove', 'without proof'),
  };
  process.stdout.write(`live-moves chaos: ${JSON.stringify(summary)}\n`);
  if (process.env.PKM_CHAOS_VERBOSE)
    for (const e of events.filter((x) => x.type === 'remove'))
      process.stdout.write(`  ${e.detail ?? ''}\n`);
  // The final move, at least, arrived with proof.
  const finalMove = events.find((e) => e.type === 'move' && e.pubkeys.includes(final ?? ''));
  expect([final !== undefined, finalMove?.detail]).toEqual([
    true,
    expect.stringMatching(/with proof/),
  ]);
  expect(moved).toBeGreaterThan(0);

  // The secrets the agents were handed, and their keystore passwords, for the end-of-run
  // scan of every spawned pkm's log (test/support/log-scan.ts): none may appear in one.
  for (const pod of PODS) {
    const view = await http<{ keys: Array<{ secretKey?: string }> }>(
      url,
      'POST',
      `/v1/pods/${pod}/assignment`,
      { have: [] },
    );
    expect([pod, view.status, view.body]).toMatchObject([pod, 200, { keys: expect.any(Array) }]);
    expect(view.body.keys.filter((k) => k.secretKey !== undefined).length).toBe(
      view.body.keys.length,
    );
    // Made at the agent's first import: a pod that never imported a key has none.
    const password = await readFile(join(dir, `agent-${pod}`, 'password.txt'), 'utf8').catch(
      () => undefined,
    );
    if (password !== undefined) rememberSecret(password);
  }
  for (const a of agents.values()) a.proc.kill('SIGTERM');
  for (const a of agents.values()) await a.exited;
  server.proc.kill('SIGTERM');
  expect(await server.exited).toBe(0);
  // Its invariants, read without the KEK (as pkm db check does).
  const store = await backing.open(dir);
  try {
    expect((await checkStore(store)).problems).toEqual([]);
  } finally {
    await store.close();
  }
}

describe.each([
  ['local keystores', false],
  ['a remote signer per pod (--remote-signer-url)', true],
] as const)('live moves under kill -9, keys in %s', (_mode, remote) => {
  it('no key is ever in two validator clients; everything converges once the crashes stop', async () => {
    await chaos(remote, levelDb);
  }, 180_000);
});

const bins = await findPostgres();

describe.skipIf(bins === undefined)('live moves under kill -9, the server on PostgreSQL', () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });
  it('no key is ever in two validator clients; everything converges once the crashes stop', async () => {
    const database = await newDatabase(cluster(), 'pkm_live_moves');
    const kek = `${'3c'.repeat(32)}\n`;
    await chaos(false, {
      args: async (dir) => {
        await writeFile(join(dir, 'kek'), kek, { mode: 0o600 });
        return ['--store', database, '--kek-file', join(dir, 'kek')];
      },
      open: () => PgStore.open(database),
    });
  }, 180_000);
});

/** A new database on the cluster, and its URL (the cluster's user, trust auth). */
async function newDatabase(server: PgServer, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `postgres://pkm@127.0.0.1:${server.port}/${name}`;
}
