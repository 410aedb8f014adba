// bench/import: `pkm keys import` of 256 EIP-2335 scrypt keystores (n=2^18, EIP-2335's own
// cost), as the built CLI runs it (a child process, its KDFs on worker threads), against
// sequential decrypt() of @chainsafe/bls-keystore over the same keystores in the same run.
// Figures: import.scrypt_256_keys (keystores/s; its ratio is the sequential time over the
// import's) and import.peak_rss (MiB, the import process's VmHWM, worker threads included).
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomKey } from '../src/keys/bls.js';
import { deriveKey, newKdf, sealWithKey } from '../src/keys/keystore.js';
import { report } from './lib.js';

const run = promisify(execFile);
const CHILD = new URL('./import-child.ts', import.meta.url).pathname;
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
/** Fewer keys or a cheaper KDF only to try the benchmark out; the targets hold for the defaults. */
const KEYS = Number(process.env.PKM_BENCH_IMPORT_KEYS ?? 256);
const SCRYPT_N = Number(process.env.PKM_BENCH_IMPORT_SCRYPT_N ?? 2 ** 18);
const PASSWORD = 'a bench password';

/**
 * staking-deposit-cli's layout: keystore-m_12381_3600_<i>_0_0-<ts>.json. The keystores share one
 * KDF (salt and cost) so that making them takes one KDF run, not 256; nothing caches a derived
 * key, so each import and each baseline decryption still runs its own full scrypt.
 */
async function writeKeystores(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const kdf = newKdf('scrypt', { scrypt: { n: SCRYPT_N, r: 8, p: 1 }, pbkdf2: { c: 1 } });
  const dk = await deriveKey(kdf, PASSWORD);
  const ts = Math.floor(Date.now() / 1000);
  for (let i = 0; i < KEYS; i++) {
    const key = randomKey();
    const path = `m/12381/3600/${i}/0/0`;
    const keystore = sealWithKey(key.secretKey, kdf, dk, { pubkey: key.pubkey, path });
    await writeFile(
      join(dir, `keystore-m_12381_3600_${i}_0_0-${ts}.json`),
      JSON.stringify(keystore),
    );
  }
}

/** The peak resident set of a running process (VmHWM), polled until it exits, in MiB. */
function peakRss(pid: number, done: Promise<unknown>): Promise<number> {
  let peak = 0;
  const poll = async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    peak = Math.max(peak, kib / 1024);
  };
  const timer = setInterval(() => void poll(), 50);
  return done.then(
    () => {
      clearInterval(timer);
      return peak;
    },
    (err: unknown) => {
      clearInterval(timer);
      throw err;
    },
  );
}

async function importOnce(keystores: string, dataDir: string, passwordFile: string) {
  const t0 = performance.now();
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'keys',
      'import',
      '--data-dir',
      dataDir,
      '--keystores',
      keystores,
      '--password-file',
      passwordFile,
      '--never-validated',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve, reject) =>
    proc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`import exited ${code}`)),
    ),
  );
  const pid = proc.pid;
  if (pid === undefined) throw new Error('the import did not start');
  const rss = await peakRss(pid, exited);
  const ms = performance.now() - t0;
  const imported = (JSON.parse(out) as { imported: unknown[] }).imported.length;
  if (imported !== KEYS) throw new Error(`imported ${imported} of ${KEYS}`);
  return { ms, rss };
}

export async function benchImport(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-import-'));
  try {
    const keystores = join(dir, 'validator_keys');
    await writeKeystores(keystores);
    const passwordFile = join(dir, 'password.txt');
    await writeFile(passwordFile, PASSWORD, { mode: 0o600 });
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', CHILD, keystores, PASSWORD],
      {
        maxBuffer: 1 << 20,
      },
    );
    const baseline = JSON.parse(stdout) as { ms: number };
    const imported = await importOnce(keystores, join(dir, 'data'), passwordFile);
    const rate = (ms: number) => Math.round((KEYS / ms) * 1000 * 100) / 100;
    report({
      name: 'import.scrypt_256_keys',
      value: rate(imported.ms),
      unit: 'keystores/s',
      baseline: rate(baseline.ms),
      ratio: Math.round((baseline.ms / imported.ms) * 100) / 100,
      target: 'ratio >= 1.7',
    });
    report({
      name: 'import.peak_rss',
      value: Math.round(imported.rss),
      unit: 'MiB',
      target: '<= 1024 MiB',
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
