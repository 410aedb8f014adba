import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYOUT_SPECS, LAYOUTS, type Layout } from '../../src/client/layouts.js';
import { ExitCode } from '../../src/errors.js';
import { publicKeyOf, toHex } from '../../src/keys/bls.js';
import { decryptKeystore } from '../../src/keys/keystore.js';
import { freePort } from '../chain/node.js';
import { type AssignmentsBody, http, tempDir } from '../helpers.js';
import { TEST_MNEMONIC } from '../keys/vectors.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

/** Both KDFs at EIP-2335's real costs, spread over the layouts to keep the suite quick. */
const KDF: Record<Layout, 'scrypt' | 'pbkdf2'> = {
  lighthouse: 'scrypt',
  prysm: 'scrypt',
  teku: 'pbkdf2',
  nimbus: 'pbkdf2',
  lodestar: 'pbkdf2',
};

interface Summary {
  pod: string;
  pubkeys: string[];
  files: string[];
}

describe('pkm client against pkm server (child processes)', () => {
  it('writes every layout so that each keystore decrypts to a key the server lists for the pod', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    const root = await tempDir();
    for (const layout of LAYOUTS) {
      const pod = `${layout}-0`;
      const out = join(root, layout);
      const client = runPkm([
        'client',
        '--server',
        server.url,
        '--pod',
        pod,
        '--count',
        '2',
        '--out',
        out,
        '--layout',
        layout,
        '--kdf',
        KDF[layout],
      ]);
      expect(await client.exited).toBe(0);
      const summary = JSON.parse(client.stdout.join('')) as Summary;
      const listed = (await http<AssignmentsBody>(server.url, 'GET', '/v1/assignments')).body.pods[
        pod
      ];
      expect(summary.pubkeys.sort()).toEqual([...(listed ?? [])].sort());

      const password = await readFile(join(out, 'password.txt'), 'utf8');
      rememberSecret(password.trim());
      const secrets: string[] = [];
      for (const pubkey of summary.pubkeys) {
        const file = join(out, LAYOUT_SPECS[layout].keystorePath(pubkey));
        expect((await stat(file)).mode & 0o777).toBe(0o600);
        expect((await stat(join(file, '..'))).mode & 0o777).toBe(0o700);
        const secret = await decryptKeystore(JSON.parse(await readFile(file, 'utf8')), password);
        expect(publicKeyOf(secret)).toBe(pubkey);
        secrets.push(toHex(secret).slice(2));
        rememberSecret(toHex(secret));
      }
      for (const f of summary.files) expect((await stat(join(out, f))).mode & 0o777).toBe(0o600);
      const printed = [...client.stdout, ...client.stderr, ...server.stdout, ...server.stderr].join(
        '\n',
      );
      for (const s of [...secrets, password]) expect(printed).not.toContain(s);
    }
  }, 120_000);

  it('waits for a server that is not up yet, logging each wait, then succeeds', async () => {
    const port = await freePort();
    const out = join(await tempDir(), 'out');
    const client = runPkm([
      'client',
      '--server',
      `http://127.0.0.1:${port}`,
      '--pod',
      'early-0',
      '--count',
      '1',
      '--out',
      out,
      '--kdf',
      'pbkdf2',
      '--timeout',
      '60s',
    ]);
    await new Promise((r) => setTimeout(r, 1500));
    expect(client.proc.exitCode).toBeNull();
    const server = runPkm([
      'server',
      '--data-dir',
      await tempDir(),
      '--listen',
      `127.0.0.1:${port}`,
    ]);
    expect(await client.exited).toBe(0);
    expect(
      client.stderr.some((l) => /waiting to retry/.test(l) && /SERVER_UNREACHABLE/.test(l)),
    ).toBe(true);
    expect((JSON.parse(client.stdout.join('')) as Summary).pubkeys).toHaveLength(1);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 60_000);

  it('gives up at --timeout with TIMEOUT (exit 4)', async () => {
    const port = await freePort();
    const client = runPkm([
      'client',
      '--server',
      `http://127.0.0.1:${port}`,
      '--pod',
      'a',
      '--count',
      '1',
      '--out',
      join(await tempDir(), 'o'),
      '--timeout',
      '2s',
    ]);
    expect(await client.exited).toBe(ExitCode.unavailable);
    expect(client.stderr.at(-1)).toMatch(/^pkm: TIMEOUT: gave up on asking the server for keys/);
  });

  it('exits 3 at once on a refusal, 2 on a usage error, 6 on foreign keys in --out', async () => {
    const server = await startServerProcess([
      '--data-dir',
      await tempDir(),
      '--max-keys-per-pod',
      '2',
    ]);
    const out = join(await tempDir(), 'out');
    const base = ['client', '--server', server.url, '--out', out, '--kdf', 'pbkdf2'];
    const refused = runPkm([...base, '--pod', 'a', '--count', '3', '--timeout', '60s']);
    expect(await refused.exited).toBe(ExitCode.refused);
    expect(refused.stderr.at(-1)).toMatch(/^pkm: COUNT_OUT_OF_RANGE: /);

    const usage = runPkm(['client', '--server', server.url, '--pod', 'a', '--count', '1']);
    expect(await usage.exited).toBe(ExitCode.usage);
    expect(usage.stderr).toEqual([
      expect.stringMatching(/^pkm: INVALID_CONFIG: --out is required/),
    ]);

    expect(await runPkm([...base, '--pod', 'a', '--count', '1']).exited).toBe(0);
    const again = runPkm([...base, '--pod', 'a', '--count', '1']);
    expect(await again.exited).toBe(0);
    expect(JSON.parse(again.stdout.join(''))).toMatchObject({ written: [] });
    const other = runPkm([...base, '--pod', 'b', '--count', '1']);
    expect(await other.exited).toBe(ExitCode.conflict);
    expect(other.stderr.at(-1)).toMatch(
      /^pkm: OUT_DIR_CONFLICT: --out holds keystores the server no longer assigns/,
    );
  }, 60_000);
});

describe('pkm server --mnemonic-file', () => {
  it('derives the known keys at m/12381/3600/i/0/0 and refuses another mnemonic or none', async () => {
    const dir = await tempDir();
    const mnemonicFile = join(dir, 'mnemonic');
    await writeFile(mnemonicFile, `${TEST_MNEMONIC}\n`, { mode: 0o600 });
    rememberSecret(TEST_MNEMONIC);
    const data = join(dir, 'data');
    // A new store: no pod can be reporting yet, so no resync window before deriving.
    const server = await startServerProcess([
      '--data-dir',
      data,
      '--mnemonic-file',
      mnemonicFile,
      '--resync-window',
      '0s',
    ]);
    const res = await http<{ keys: Array<{ pubkey: string; path: string }> }>(
      server.url,
      'POST',
      '/v1/pods/v-0/keys',
      { count: 3 },
    );
    expect(res.body.keys.map((k) => [k.path, k.pubkey.slice(0, 12)])).toEqual([
      ['m/12381/3600/0/0/0', '0xb3e445d438'],
      ['m/12381/3600/1/0/0', '0xaeb399bf56'],
      ['m/12381/3600/2/0/0', '0x92f46b0dcc'],
    ]);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    const otherFile = join(dir, 'other');
    await writeFile(otherFile, `${'zoo '.repeat(11)}wrong`);
    const other = runPkm([
      'server',
      '--data-dir',
      data,
      '--listen',
      '127.0.0.1:0',
      '--mnemonic-file',
      otherFile,
    ]);
    expect(await other.exited).toBe(ExitCode.store);
    expect(other.stderr).toEqual([
      expect.stringMatching(
        /^pkm: MNEMONIC_MISMATCH: this store was created with a different mnemonic/,
      ),
    ]);
    const none = runPkm(['server', '--data-dir', data, '--listen', '127.0.0.1:0']);
    expect(await none.exited).toBe(ExitCode.store);
    expect(none.stderr.join('')).not.toContain('abandon');

    const restarted = await startServerProcess([
      '--data-dir',
      data,
      '--mnemonic-file',
      mnemonicFile,
      '--resync-window',
      '1s',
    ]);
    // A restarted store derives nothing while pods may still report the keys they run.
    const early = await http(restarted.url, 'POST', '/v1/pods/v-1/keys', { count: 1 });
    expect([early.status, early.body.error.code, early.headers.get('retry-after')]).toEqual([
      503,
      'RESYNCING',
      '1',
    ]);
    await new Promise((r) => setTimeout(r, 1_100));
    const next = await http<{ keys: Array<{ path: string }> }>(
      restarted.url,
      'POST',
      '/v1/pods/v-1/keys',
      { count: 1 },
    );
    expect(next.body.keys[0]?.path).toBe('m/12381/3600/3/0/0');
  }, 60_000);
});
