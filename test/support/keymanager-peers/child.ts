// Starts a fake in a child process (main.ts under tsx) and gives a handle to it: its URL and
// token, kill9() for a crash, stop() for a clean end. Start it again with the same options (and
// `port: handle.port`, so remote keys still reach a signer) to restart it from its data dir.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { AttestReport, Holdings } from './answers.js';
import type { FakeSignerOptions, FakeVcOptions } from './options.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const MAIN = join(HERE, 'main.ts');
const REPO = join(HERE, '..', '..', '..');
const READY = 'FAKE_PEER_READY';
const Ready = z.object({ url: z.string(), pid: z.number() });

export interface ChildPeer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** The bearer token (undefined for a signer without auth). */
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  /** SIGKILL, and wait until it is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (a clean stop), SIGKILL after 5 s; a no-op once it has exited. */
  stop(): Promise<void>;
  /** A VC's attestation step (POST /fake/v1/attest). */
  attest(epoch?: number): Promise<AttestReport>;
  /** A VC's holdings (GET /fake/v1/holdings). */
  holdings(): Promise<Holdings>;
}

async function waitReady(proc: ChildProcess, timeoutMs: number): Promise<z.infer<typeof Ready>> {
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail('did not start in time'), timeoutMs);
    function fail(why: string) {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`fake peer ${why}: ${err.trim()}`));
    }
    proc.once('exit', (code) => fail(`exited (${code})`));
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith(`${READY} `));
      if (line === undefined) return;
      clearTimeout(timer);
      proc.removeAllListeners('exit');
      resolve(Ready.parse(JSON.parse(line.slice(READY.length + 1))));
    });
  });
}

async function start(
  kind: 'vc' | 'signer',
  opts: FakeVcOptions | FakeSignerOptions,
  tokenFile: string | undefined,
): Promise<ChildPeer> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, kind, JSON.stringify(opts)], {
    cwd: REPO,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ready = await waitReady(proc, 30_000);
  proc.stdout?.resume();
  const token = tokenFile === undefined ? undefined : (await readFile(tokenFile, 'utf8')).trim();
  const exited =
    proc.exitCode !== null || proc.signalCode !== null
      ? Promise.resolve()
      : once(proc, 'exit').then(() => undefined);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${ready.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token ?? ''}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  return {
    name: opts.name,
    url: ready.url,
    port: Number(new URL(ready.url).port),
    pid: ready.pid,
    proc,
    token,
    tokenFile,
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    attest: async (epoch) =>
      AttestReport.parse(
        await call('POST', '/fake/v1/attest', epoch === undefined ? {} : { epoch }),
      ),
    holdings: async () => Holdings.parse(await call('GET', '/fake/v1/holdings')),
  };
}

export function spawnFakeVc(opts: FakeVcOptions): Promise<ChildPeer> {
  return start('vc', opts, opts.tokenFile ?? join(opts.dataDir, 'api-token.txt'));
}

export function spawnFakeSigner(opts: FakeSignerOptions): Promise<ChildPeer> {
  return start('signer', opts, opts.tokenFile);
}
