// `pkm client --kdf-profile` as a child process against `pkm server`: fast writes pbkdf2 c=1
// keystores in every layout that @chainsafe/bls-keystore (Lodestar's reader) and pkm decrypt,
// PKM_KDF_PROFILE works like the flag, the default stays scrypt at EIP-2335's cost, and a fast
// scrypt or an unknown profile is a usage error that asks nothing and writes nothing.
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Keystore as ChainsafeKeystore } from '@chainsafe/bls-keystore';
import { describe, expect, it } from 'vitest';
import { LAYOUT_SPECS, LAYOUTS } from '../../src/client/layouts.js';
import { ExitCode } from '../../src/errors.js';
import { publicKeyOf, toHex } from '../../src/keys/bls.js';
import { decryptKeystore, parseKeystore } from '../../src/keys/keystore.js';
import { type AssignmentsBody, http, tempDir } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

interface Summary {
  pubkeys: string[];
}

describe('pkm client --kdf-profile (child processes)', () => {
  it('fast: pbkdf2 c=1 keystores in every layout, opened by @chainsafe/bls-keystore and pkm', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    const root = await tempDir();
    for (const layout of LAYOUTS) {
      const out = join(root, layout);
      const args = ['client', '--server', server.url, '--pod', `fast-${layout}`, '--count', '3'];
      // The env form for one layout, the flag for the others.
      const client =
        layout === 'lighthouse'
          ? runPkm([...args, '--out', out, '--layout', layout], { PKM_KDF_PROFILE: 'fast' })
          : runPkm([...args, '--out', out, '--layout', layout, '--kdf-profile', 'fast']);
      expect(await client.exited).toBe(0);
      const { pubkeys } = JSON.parse(client.stdout.join('')) as Summary;
      expect(pubkeys).toHaveLength(3);
      const password = (await readFile(join(out, 'password.txt'), 'utf8')).trim();
      rememberSecret(password);
      for (const pubkey of pubkeys) {
        const text = await readFile(join(out, LAYOUT_SPECS[layout].keystorePath(pubkey)), 'utf8');
        const keystore = parseKeystore(JSON.parse(text));
        expect(keystore.crypto.kdf).toMatchObject({
          function: 'pbkdf2',
          params: { c: 1, dklen: 32, prf: 'hmac-sha256' },
        });
        const secret = await ChainsafeKeystore.parse(text).decrypt(password);
        rememberSecret(toHex(secret));
        expect(publicKeyOf(secret)).toBe(pubkey);
        expect(await decryptKeystore(JSON.parse(text), password)).toEqual(secret);
      }
    }
  }, 60_000);

  it("the default is unchanged: scrypt at EIP-2335's n=2^18, r=8, p=1", async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    const out = join(await tempDir(), 'out');
    const client = runPkm(
      ['client', '--server', server.url, '--pod', 'std-0', '--count', '1'].concat(['--out', out]),
    );
    expect(await client.exited).toBe(0);
    const [pubkey = ''] = (JSON.parse(client.stdout.join('')) as Summary).pubkeys;
    const text = await readFile(join(out, LAYOUT_SPECS.lighthouse.keystorePath(pubkey)), 'utf8');
    expect(parseKeystore(JSON.parse(text)).crypto.kdf).toMatchObject({
      function: 'scrypt',
      params: { n: 262_144, r: 8, p: 1, dklen: 32 },
    });
  }, 60_000);

  it('a fast scrypt or an unknown profile exits 2, asks the server nothing and writes nothing', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    const out = join(await tempDir(), 'out');
    const base = ['client', '--server', server.url, '--pod', 'bad-0', '--count', '1', '--out', out];
    const scrypt = runPkm([...base, '--kdf-profile', 'fast', '--kdf', 'scrypt']);
    expect(await scrypt.exited).toBe(ExitCode.usage);
    expect(scrypt.stderr).toEqual([
      expect.stringMatching(
        /^pkm: INVALID_CONFIG: --kdf is scrypt, but --kdf-profile fast writes pbkdf2/,
      ),
    ]);
    const unknown = runPkm(base, { PKM_KDF_PROFILE: 'quick' });
    expect(await unknown.exited).toBe(ExitCode.usage);
    expect(unknown.stderr).toEqual([
      expect.stringMatching(/^pkm: INVALID_CONFIG: --kdf-profile is one of standard, fast/),
    ]);
    await expect(access(out)).rejects.toMatchObject({ code: 'ENOENT' });
    const pods = (await http<AssignmentsBody>(server.url, 'GET', '/v1/assignments')).body.pods;
    expect(pods['bad-0']).toBeUndefined();
  }, 60_000);
});
