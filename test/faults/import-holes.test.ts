// Found by an adversarial review of issue 14 (import, --new-keys never): each test held false
// before its fix.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomKey, toHex } from '../../src/keys/bls.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import { Auth } from '../../src/server/auth.js';
import { runPkm, startServerProcess } from '../e2e/spawn.js';
import { type AllocationBody, http, MINUTE, startTestServer, tempDir } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const ADMIN = 'a'.repeat(64);
const admin = { authorization: `Bearer ${ADMIN}` };
const PATH = '/v1/admin/keys/import';

async function cheapKeystore(password = 'pw') {
  const k = randomKey();
  rememberSecret(toHex(k.secretKey).slice(2));
  const ks = await encryptKeystore(
    k.secretKey,
    password,
    { pubkey: k.pubkey, path: '' },
    'pbkdf2',
    CHEAP,
  );
  return { k, ks };
}

/** A well-formed keystore whose KDF takes many minutes of CPU (pbkdf2 c = 2^31 - 1). */
async function hostileKeystore() {
  const { k, ks } = await cheapKeystore();
  const kdf = ks.crypto.kdf;
  if (kdf.function !== 'pbkdf2') throw new Error('pbkdf2 expected');
  return {
    k,
    ks: {
      ...ks,
      crypto: { ...ks.crypto, kdf: { ...kdf, params: { ...kdf.params, c: 2 ** 31 - 1 } } },
    },
  };
}

describe('break: keystore import', () => {
  it('R14-1: a key imported --never-validated, then imported again as possibly live, is fenced', async () => {
    const server = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      reuseDelayMs: 20 * MINUTE,
    });
    const { k, ks } = await cheapKeystore();
    const first = await http<{ imported: string[] }>(
      server.url,
      'POST',
      PATH,
      { keystores: [ks], passwords: ['pw'], neverValidated: true },
      admin,
    );
    expect(first.body.imported).toEqual([k.pubkey]);
    // The operator learns the key did run elsewhere and imports it again, without --never-validated:
    // "Imported keys enter the pool fenced, because they may still be live elsewhere".
    const again = await http<{ imported: string[]; skipped: string[] }>(
      server.url,
      'POST',
      PATH,
      { keystores: [ks], passwords: ['pw'] },
      admin,
    );
    expect(again.status).toBe(200);
    const got = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/p-0/keys',
      { count: 1 },
      admin,
    );
    // No pod gets it before the reuse delay.
    expect(got.body.keys?.map((x) => x.pubkey) ?? []).not.toContain(k.pubkey);
  });

  it('R14-2: a keystore of absurd KDF cost is refused by name at once (no hang); exit 3', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const src = join(dir, 'keys');
    await mkdir(src);
    const { ks } = await hostileKeystore();
    await writeFile(join(src, 'keystore-hostile.json'), JSON.stringify(ks));
    await writeFile(join(dir, 'pw'), 'pw');
    const child = runPkm([
      'keys',
      'import',
      '--data-dir',
      data,
      '--keystores',
      src,
      '--password-file',
      join(dir, 'pw'),
    ]);
    const outcome = await Promise.race([
      child.exited,
      new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000)),
    ]);
    child.proc.kill('SIGKILL');
    expect(outcome).toBe(3); // KEYSTORE_INVALID naming the file, the rest imported
  }, 30_000);

  it('R14-3: a hostile keystore in POST /v1/admin/keys/import does not block later imports', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'admin'), ADMIN);
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--auth-token-file',
      join(dir, 'admin'),
    ]);
    const { ks: bad } = await hostileKeystore();
    const ac = new AbortController();
    // The hostile request: the client even gives up after 2 s.
    const hostile = fetch(`${server.url}${PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: JSON.stringify({ keystores: [bad], passwords: ['pw'] }),
      signal: ac.signal,
    }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    ac.abort();
    await hostile;
    const { k, ks } = await cheapKeystore();
    const started = Date.now();
    const good = await Promise.race([
      http<{ imported: string[] }>(
        server.url,
        'POST',
        PATH,
        { keystores: [ks], passwords: ['pw'] },
        admin,
      ),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000)),
    ]);
    server.proc.kill('SIGKILL');
    expect({ answered: good !== undefined, ms: Date.now() - started }).toMatchObject({
      answered: true,
    });
    expect(good?.body.imported).toEqual([k.pubkey]);
  }, 40_000);

  it('R14-4: a FIFO named keystore-*.json is refused by name, the other keystores import; exit 3', async () => {
    const dir = await tempDir();
    const src = join(dir, 'keys');
    await mkdir(src);
    const { ks } = await cheapKeystore();
    await writeFile(join(src, 'keystore-ok.json'), JSON.stringify(ks));
    execFileSync('mkfifo', [join(src, 'keystore-pipe.json')]);
    await writeFile(join(dir, 'pw'), 'pw');
    const child = runPkm([
      'keys',
      'import',
      '--data-dir',
      join(dir, 'data'),
      '--keystores',
      src,
      '--password-file',
      join(dir, 'pw'),
    ]);
    const outcome = await Promise.race([
      child.exited,
      new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000)),
    ]);
    child.proc.kill('SIGKILL');
    expect(outcome).toBe(3); // the FIFO refused by name, keystore-ok.json imported
  }, 20_000);

  it('R14-5: POOL_EXHAUSTED names POST /eth/v1/keystores, which the server serves', async () => {
    const server = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      newKeys: 'never',
    });
    const res = await http(server.url, 'POST', '/v1/pods/p-0/keys', { count: 1 }, admin);
    expect(res.body.error.code).toBe('POOL_EXHAUSTED');
    expect(res.body.error.message).toContain('POST /eth/v1/keystores');
    const { ks } = await cheapKeystore();
    const km = await http(
      server.url,
      'POST',
      '/eth/v1/keystores',
      { keystores: [JSON.stringify(ks)], passwords: ['pw'] },
      admin,
    );
    expect(km.status).not.toBe(404);
  });
});
