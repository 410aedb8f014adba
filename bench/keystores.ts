// bench/keystores: 64 keys written as EIP-2335 keystores by `pkm client`'s code path, against
// sequential create() of @chainsafe/bls-keystore measured in the same run.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { report, spawnServer } from './lib.js';

const run = promisify(execFile);
const CHILD = new URL('./keystores-child.ts', import.meta.url).pathname;
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

async function child(args: string[]): Promise<{ ms: number; maxRssMiB: number }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as { ms: number; maxRssMiB: number };
}

export async function benchKeystores(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-bench-ks-'));
  const server = await spawnServer([
    CLI,
    'server',
    '--data-dir',
    join(dir, 'data'),
    '--listen',
    '127.0.0.1:0',
    '--log-level',
    'info',
  ]);
  try {
    const baseline = await child(['baseline']);
    const client = await child(['client', server.url, join(dir, 'scrypt'), 'scrypt', 'false']);
    const shared = await child(['client', server.url, join(dir, 'shared'), 'scrypt', 'true']);
    const pbkdf2 = await child(['client', server.url, join(dir, 'pbkdf2'), 'pbkdf2', 'false']);
    const rate = (ms: number) => Math.round((64 / ms) * 1000 * 100) / 100;
    report({
      name: 'keystores.baseline_sequential_scrypt',
      value: rate(baseline.ms),
      unit: 'keystores/s',
    });
    report({
      name: 'keystores.client_scrypt',
      value: rate(client.ms),
      unit: 'keystores/s',
      baseline: rate(baseline.ms),
      ratio: Math.round((baseline.ms / client.ms) * 100) / 100,
      target: 'ratio >= 1.5',
    });
    report({
      name: 'keystores.client_scrypt_peak_rss',
      value: Math.round(client.maxRssMiB),
      unit: 'MiB',
      target: '<= 700 MiB',
    });
    report({
      name: 'keystores.client_scrypt_shared_kdf',
      value: rate(shared.ms),
      unit: 'keystores/s',
      baseline: rate(baseline.ms),
      ratio: Math.round((baseline.ms / shared.ms) * 10) / 10,
      target: 'ratio >= 10',
    });
    report({
      name: 'keystores.client_pbkdf2_64_keys',
      value: Math.round(pbkdf2.ms),
      unit: 'ms',
      target: '<= 3000 ms',
    });
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
