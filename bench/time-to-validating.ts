// bench/time-to-validating (issue 17): how long one pod waits, from asking for its keys to
// holding every secret in memory, for the default and the fast KDF profile in the same run.
//   1. the server's allocation and 2. the client's writing: `pkm client` (the built CLI, as a
//      child process, as the init container runs it) against a running `pkm server`, which
//      makes the pod's keys; the keystores land in the Lodestar layout;
//   3. the validator client's start: every keystore decrypted by @chainsafe/bls-keystore, what
//      Lodestar uses, the way Lodestar does it: one worker thread per core (at most one per
//      keystore), each decrypting one keystore at a time.
// The keystores go to /dev/shm when there is one: tmpfs, like the memory-backed emptyDir the
// fast profile is meant for. At the default profile's scrypt (n=2^18, about 0.35 s per
// keystore per side here) 1,000 keys take minutes; PKM_BENCH_TTV_KEYS sets a smaller count.
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { LAYOUT_SPECS } from '../src/client/layouts.js';
import { publicKeyOf } from '../src/keys/bls.js';
import type { KdfProfile } from '../src/keys/kdf-profile.js';
import { report, spawnServer } from './lib.js';

const run = promisify(execFile);
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

/**
 * One decryption thread, as Lodestar's (packages/cli/src/cmds/validator/keymanager/
 * decryptKeystores/worker.ts): one keystore at a time, read from its file with the password
 * from its own file (trailing newlines stripped, as Lodestar does), decrypted by
 * @chainsafe/bls-keystore, the secret handed back as a transferred buffer. A data: URL module,
 * as src/keys/kdf-pool.ts's, so that it runs without the TypeScript loader, which worker
 * threads do not inherit; the package comes in by its resolved URL.
 */
const WORKER_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
const mod = await import(workerData.keystoreModule);
const { Keystore } = mod.Keystore ? mod : mod.default;
parentPort.on('message', async ({ id, keystoreFile, passwordFile }) => {
  try {
    const [text, password] = await Promise.all([
      readFile(keystoreFile, 'utf8'),
      readFile(passwordFile, 'utf8'),
    ]);
    const secret = await Keystore.parse(text).decrypt(password.replace(/[\\r\\n]+$/, ''));
    const out = Uint8Array.from(secret);
    parentPort.postMessage({ id, secret: out }, [out.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message ? err.message : err) });
  }
});
`;
const WORKER = new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`);
const KEYSTORE_MODULE = import.meta.resolve('@chainsafe/bls-keystore');
const LAYOUT = LAYOUT_SPECS.lodestar;
/** Targets for the fast profile (issue 17). */
const FAST_TARGET_MS = 10_000;
const FAST_TARGET_RATIO = 20;

/** PKM_BENCH_TTV_KEYS, default 1,000: the keys of the one pod. */
function keyCount(): number {
  const raw = process.env.PKM_BENCH_TTV_KEYS ?? '1000';
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 10_000) {
    throw new Error(`PKM_BENCH_TTV_KEYS takes a whole number from 1 to 10000, not "${raw}"`);
  }
  return n;
}

/** A folder on tmpfs when the machine has /dev/shm, else in the temp folder. */
async function memoryDir(prefix: string): Promise<string> {
  const shm = await access('/dev/shm').then(
    () => '/dev/shm',
    () => tmpdir(),
  );
  return mkdtemp(join(shm, prefix));
}

const Summary = z.object({ pubkeys: z.array(z.string()) });
const Reply = z.union([
  z.object({ id: z.number(), secret: z.instanceof(Uint8Array) }),
  z.object({ id: z.number(), error: z.string() }),
]);

interface Job {
  readonly id: number;
  readonly keystoreFile: string;
  readonly passwordFile: string;
}

/** One job on one worker, which runs one at a time. */
function decryptOn(worker: Worker, job: Job): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      worker.off('message', onMessage);
      reject(err);
    };
    const onMessage = (message: unknown) => {
      worker.off('error', onError);
      const reply = Reply.parse(message);
      if ('secret' in reply && reply.id === job.id) resolve(reply.secret);
      else
        reject(new Error(`keystore ${job.keystoreFile}: ${'error' in reply ? reply.error : ''}`));
    };
    worker.once('message', onMessage);
    worker.once('error', onError);
    worker.postMessage(job);
  });
}

/** Decrypts every keystore on min(jobs, cores) threads, as Lodestar's DecryptKeystoresThreadPool. */
async function decryptAll(jobs: readonly Job[]): Promise<Uint8Array[]> {
  const size = Math.max(1, Math.min(jobs.length, availableParallelism()));
  const workers = Array.from(
    { length: size },
    () => new Worker(WORKER, { workerData: { keystoreModule: KEYSTORE_MODULE } }),
  );
  const secrets: Uint8Array[] = [];
  let next = 0;
  try {
    await Promise.all(
      workers.map(async (worker) => {
        for (let i = next++; i < jobs.length; i = next++) {
          const job = jobs[i];
          if (job) secrets[i] = await decryptOn(worker, job);
        }
      }),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return secrets;
}

interface Timing {
  readonly totalMs: number;
  readonly clientMs: number;
  readonly decryptMs: number;
}

/** One pod from its request to its decrypted keys, at one KDF profile. */
async function timeToValidating(url: string, profile: KdfProfile, keys: number): Promise<Timing> {
  const out = await memoryDir(`pkm-bench-ttv-${profile}-`);
  try {
    const args = [
      CLI,
      'client',
      '--server',
      url,
      '--pod',
      `ttv-${profile}`,
      '--count',
      String(keys),
    ];
    args.push('--out', out, '--layout', 'lodestar', '--timeout', '10m', '--log-level', 'warn');
    if (profile === 'fast') args.push('--kdf-profile', 'fast');
    const t0 = performance.now();
    const { stdout } = await run(process.execPath, args, { maxBuffer: 64 << 20 });
    const t1 = performance.now();
    const { pubkeys } = Summary.parse(JSON.parse(stdout));
    if (pubkeys.length !== keys) throw new Error(`pkm client wrote ${pubkeys.length} keys`);
    const jobs = pubkeys.map((pubkey, id) => ({
      id,
      keystoreFile: join(out, LAYOUT.keystorePath(pubkey)),
      passwordFile: join(out, LAYOUT.passwordPath(pubkey) ?? 'password.txt'),
    }));
    const secrets = await decryptAll(jobs);
    const t2 = performance.now();
    // Outside the timing: every secret is the key the server handed over.
    pubkeys.forEach((pubkey, i) => {
      const secret = secrets[i];
      if (!secret || publicKeyOf(secret) !== pubkey) throw new Error(`wrong secret for ${pubkey}`);
      secret.fill(0);
    });
    return { totalMs: t2 - t0, clientMs: t1 - t0, decryptMs: t2 - t1 };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

const ms = (v: number) => Math.round(v);

export async function benchTimeToValidating(): Promise<void> {
  const keys = keyCount();
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-ttv-'));
  const server = await spawnServer([
    CLI,
    'server',
    '--data-dir',
    join(dir, 'data'),
    '--listen',
    '127.0.0.1:0',
    '--max-keys-per-pod',
    String(keys),
  ]);
  try {
    const standard = await timeToValidating(server.url, 'standard', keys);
    const fast = await timeToValidating(server.url, 'fast', keys);
    report({ name: 'time_to_validating.keys', value: keys, unit: 'keys' });
    for (const [name, t] of [
      ['default', standard],
      ['fast', fast],
    ] as const) {
      report({
        name: `time_to_validating.${name}.allocate_and_write`,
        value: ms(t.clientMs),
        unit: 'ms',
      });
      report({ name: `time_to_validating.${name}.decrypt`, value: ms(t.decryptMs), unit: 'ms' });
    }
    report({ name: 'time_to_validating.default', value: ms(standard.totalMs), unit: 'ms' });
    report({
      name: 'time_to_validating.fast',
      value: ms(fast.totalMs),
      unit: 'ms',
      baseline: ms(standard.totalMs),
      ratio: Math.round((standard.totalMs / fast.totalMs) * 10) / 10,
      target: `<= ${FAST_TARGET_MS} ms and ratio >= ${FAST_TARGET_RATIO}`,
    });
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
