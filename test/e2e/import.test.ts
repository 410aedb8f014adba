// `pkm keys import` as a child process (the built dist/cli.js): every source layout, refusals
// and the exit code, a locked store, progress on stderr, and kill -9 in the middle of an import.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYOUT_SPECS, LAYOUTS } from '../../src/client/layouts.js';
import { type BlsKey, randomKey, toHex } from '../../src/keys/bls.js';
import {
  deriveKey,
  encryptKeystore,
  type KdfCosts,
  newKdf,
  sealWithKey,
} from '../../src/keys/keystore.js';
import { checkStore } from '../../src/store/check.js';
import { kekLoader } from '../../src/store/encryption.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm } from './spawn.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };

interface Printed {
  imported: string[];
  skipped: string[];
  failed: Array<{ file: string; code: string; message: string }>;
}

async function put(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text, { mode: 0o600 });
}

function keys(n: number): BlsKey[] {
  const made = Array.from({ length: n }, () => randomKey());
  for (const k of made) rememberSecret(toHex(k.secretKey).slice(2));
  return made;
}

async function keystoreText(k: BlsKey, password: string, kdf: 'scrypt' | 'pbkdf2' = 'scrypt') {
  return JSON.stringify(
    await encryptKeystore(k.secretKey, password, { pubkey: k.pubkey, path: '' }, kdf, CHEAP),
  );
}

async function runImport(args: string[], env: Record<string, string> = {}) {
  const child = runPkm(['keys', 'import', ...args], env);
  const code = await child.exited;
  return { code, stdout: child.stdout, stderr: child.stderr };
}

/** The store's secrets open to the keys' own, and its invariants hold. */
async function expectStored(dataDir: string, expected: readonly BlsKey[]): Promise<void> {
  const store = await Store.open(dataDir, { kek: kekLoader(dataDir) });
  try {
    for (const k of expected) {
      const record = await store.getKey(k.pubkey);
      if (record?.secret === undefined) throw new Error(`${k.pubkey} not stored`);
      expect(toHex(store.secrets.open(record.secret, k.pubkey))).toBe(toHex(k.secretKey));
    }
    expect((await checkStore(store)).problems).toEqual([]);
  } finally {
    await store.close();
  }
}

describe('pkm keys import', () => {
  it('imports each of the five layouts pkm client writes, with their own passwords', async () => {
    const dir = await tempDir();
    for (const layout of LAYOUTS) {
      const spec = LAYOUT_SPECS[layout];
      const made = keys(2);
      const src = join(dir, layout);
      for (const [i, k] of made.entries()) {
        const password = spec.sharedPasswordPath === undefined ? `pw-${layout}-${i}` : 'shared';
        await put(
          join(src, spec.keystorePath(k.pubkey)),
          await keystoreText(k, password, i === 0 ? 'scrypt' : 'pbkdf2'),
        );
        const own = spec.passwordPath(k.pubkey);
        if (own !== undefined) await put(join(src, own), password);
      }
      if (spec.sharedPasswordPath !== undefined)
        await put(join(src, spec.sharedPasswordPath), 'shared\n');
      const data = join(dir, `data-${layout}`);
      const run = await runImport(['--data-dir', data, '--keystores', src]);
      expect(run.code, `${layout}: ${run.stderr.join('\n')}`).toBe(0);
      const printed = JSON.parse(run.stdout[0] ?? '') as Printed;
      expect([...printed.imported].sort(), layout).toEqual(made.map((k) => k.pubkey).sort());
      await expectStored(data, made);
    }
  });

  it('imports a staking-deposit-cli folder with --passwords-dir; a bad keystore fails alone, exit 3', async () => {
    const dir = await tempDir();
    const made = keys(3);
    const src = join(dir, 'validator_keys');
    const pwDir = join(dir, 'passwords');
    for (const [i, k] of made.entries()) {
      const name = `keystore-m_12381_3600_${i}_0_0-1700000000`;
      await put(join(src, `${name}.json`), await keystoreText(k, `pw${i}`));
      await put(join(pwDir, `${name}.txt`), i === 1 ? 'wrong\n' : `pw${i}\n`);
    }
    await put(join(src, 'keystore-m_12381_3600_9_0_0-1700000000.json'), '{ not json');
    await put(join(src, 'deposit_data-1700000000.json'), '[]');
    const data = join(dir, 'data');
    const run = await runImport(['--data-dir', data, '--keystores', src, '--passwords-dir', pwDir]);
    expect(run.code).toBe(3);
    const printed = JSON.parse(run.stdout[0] ?? '') as Printed;
    expect([...printed.imported].sort()).toEqual([made[0]?.pubkey, made[2]?.pubkey].sort());
    expect(printed.failed.map((f) => [f.file.replace(/.*\//, ''), f.code]).sort()).toEqual([
      ['keystore-m_12381_3600_1_0_0-1700000000.json', 'KEYSTORE_PASSWORD'],
      ['keystore-m_12381_3600_9_0_0-1700000000.json', 'KEYSTORE_INVALID'],
    ]);
    await expectStored(
      data,
      [made[0], made[2]].filter((k) => k !== undefined),
    );
    // Again: nothing new, the same refusals.
    const again = await runImport([
      '--data-dir',
      data,
      '--keystores',
      src,
      '--passwords-dir',
      pwDir,
    ]);
    expect(again.code).toBe(3);
    expect((JSON.parse(again.stdout[0] ?? '') as Printed).skipped).toHaveLength(2);
  });

  it('refuses a running server’s data dir (the store’s lock) and imports nothing', async () => {
    const dir = await tempDir();
    const [k] = keys(1);
    if (!k) throw new Error('no key');
    await put(join(dir, 'ks.json'), await keystoreText(k, 'pw'));
    await put(join(dir, 'pw.txt'), 'pw');
    const data = join(dir, 'data');
    const held = await Store.open(data, { kek: kekLoader(data) });
    try {
      const run = await runImport([
        '--data-dir',
        data,
        '--keystores',
        join(dir, 'ks.json'),
        '--password-file',
        join(dir, 'pw.txt'),
      ]);
      expect(run.code).toBe(5);
      expect(run.stderr.join('\n')).toContain('STORE_LOCKED');
      expect(await held.getKey(k.pubkey)).toBeUndefined();
    } finally {
      await held.close();
    }
  });

  it('survives kill -9 mid-import: every key whole or absent, db check clean, a re-run completes', async () => {
    const dir = await tempDir();
    const made = keys(120);
    const src = join(dir, 'keys');
    // One KDF run makes them all (EIP-2335 allows a shared salt); decrypting runs it for each.
    const kdf = newKdf('scrypt', { scrypt: { n: 2 ** 15, r: 8, p: 1 }, pbkdf2: { c: 1 } });
    const dk = await deriveKey(kdf, 'pw');
    for (const [i, k] of made.entries())
      await put(
        join(src, `keystore-${i}.json`),
        JSON.stringify(sealWithKey(k.secretKey, kdf, dk, { pubkey: k.pubkey, path: '' })),
      );
    await put(join(dir, 'pw.txt'), 'pw\n');
    const data = join(dir, 'data');
    const args = [
      'keys',
      'import',
      '--data-dir',
      data,
      '--keystores',
      src,
      '--password-file',
      join(dir, 'pw.txt'),
    ];
    const child = runPkm(args, { PKM_IMPORT_CHUNK_SIZE: '5' });
    const progress = /^pkm: (\d+)\/120 keystores decrypted, [\d.]+\/s, (\d+) imported$/;
    const deadline = Date.now() + 60_000;
    while (!child.stderr.some((l) => Number(progress.exec(l)?.[2] ?? 0) > 0)) {
      if (Date.now() > deadline || child.proc.exitCode !== null)
        throw new Error(`no progress: ${child.stderr.join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.proc.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');

    const check = runPkm(['db', 'check', '--data-dir', data]);
    expect(await check.exited).toBe(0);
    const report = JSON.parse(check.stdout[0] ?? '') as { keys: number; problems: string[] };
    expect(report.problems).toEqual([]);
    expect(report.keys % 5).toBe(0); // whole chunks only
    expect(report.keys).toBeGreaterThan(0);
    expect(report.keys).toBeLessThan(120);

    const rerun = runPkm(args, { PKM_IMPORT_CHUNK_SIZE: '5' });
    expect(await rerun.exited).toBe(0);
    const printed = JSON.parse(rerun.stdout[0] ?? '') as Printed;
    expect(printed.imported.length + printed.skipped.length).toBe(120);
    expect(printed.skipped).toHaveLength(report.keys);
    await expectStored(data, made);
    const store = await Store.open(data, { kek: kekLoader(data) });
    try {
      expect(store.storedCounts()).toMatchObject({ cooling: 120, fenced: 120 });
      expect((await store.events(0, 1000)).filter((e) => e.type === 'import')).toHaveLength(120);
    } finally {
      await store.close();
    }
    for (const line of [...child.stdout, ...child.stderr, ...rerun.stdout, ...rerun.stderr])
      for (const k of made) expect(line).not.toContain(toHex(k.secretKey).slice(2));
  }, 120_000);
});
