import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ClientOptions, runClient } from '../../src/client/client.js';
import { LAYOUTS, type Layout } from '../../src/client/layouts.js';
import { ExitCode, type PkmError } from '../../src/errors.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import { decryptKeystore } from '../../src/keys/keystore.js';
import { createLogger } from '../../src/log.js';
import { http, MINUTE, startTestServer, tempDir } from '../helpers.js';

const CHEAP = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1000 } } as const;
const quiet = createLogger('silent');

/** The files DESIGN.md names for each layout, for one key. */
const EXPECTED: Record<Layout, (pk: string) => string[]> = {
  lighthouse: (pk) => [`validators/${pk}/voting-keystore.json`, `secrets/${pk}`],
  nimbus: (pk) => [`validators/${pk}/keystore.json`, `secrets/${pk}`],
  lodestar: (pk) => [`keystores/${pk}/voting-keystore.json`, `secrets/${pk}`],
  teku: (pk) => [`keys/${pk}.json`, `passwords/${pk}.txt`],
  prysm: (pk) => [`keystores/keystore-${pk}.json`],
};

async function options(
  url: string,
  layout: Layout,
  extra: Partial<ClientOptions> = {},
): Promise<ClientOptions> {
  const out = join(await tempDir(), 'out');
  return {
    server: new URL(url),
    pod: 'validator-0',
    namespace: 'default',
    count: 2,
    out,
    layout,
    kdf: 'scrypt',
    passwordFile: join(out, 'password.txt'),
    timeoutMs: 5_000,
    concurrency: 2,
    sharedKdf: false,
    costs: CHEAP,
    ...extra,
  };
}

describe('pkm client layouts', () => {
  it.each(LAYOUTS)(
    '%s: writes exactly its files, 0600 in 0700 folders, decrypting to the keys',
    async (layout) => {
      const { url } = await startTestServer();
      const opts = await options(url, layout);
      const summary = await runClient(opts, quiet);
      const password = await readFile(opts.passwordFile, 'utf8');
      expect(password.length).toBeGreaterThanOrEqual(43);
      expect(summary.pubkeys).toHaveLength(2);
      const expected = summary.pubkeys.flatMap(EXPECTED[layout]);
      if (layout === 'prysm') expected.push('wallet-password.txt');
      expect(summary.files.sort()).toEqual(expected.sort());
      for (const file of expected) {
        expect((await stat(join(opts.out, file))).mode & 0o777).toBe(0o600);
        expect((await stat(join(opts.out, file, '..'))).mode & 0o777).toBe(0o700);
        if (!file.endsWith('.json'))
          expect(await readFile(join(opts.out, file), 'utf8')).toBe(password);
      }
      for (const pk of summary.pubkeys) {
        const keystoreFile = EXPECTED[layout](pk)[0] ?? '';
        const keystore = JSON.parse(await readFile(join(opts.out, keystoreFile), 'utf8')) as {
          path: string;
        };
        expect(keystore.path).toBe('');
        expect(publicKeyOf(await decryptKeystore(keystore, password))).toBe(pk);
      }
    },
  );

  it('re-runs as a no-op when --out holds exactly the keys the server returns', async () => {
    const { url } = await startTestServer();
    const opts = await options(url, 'lighthouse');
    const first = await runClient(opts, quiet);
    const file = join(opts.out, first.files[0] ?? '');
    const before = await stat(file);
    const again = await runClient(opts, quiet);
    expect(again.written).toEqual([]);
    expect(again.kept.sort()).toEqual([...first.pubkeys].sort());
    expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);
  });

  it('tops up: keeps the keystores it has and writes only the new keys', async () => {
    const { url } = await startTestServer();
    const opts = await options(url, 'teku');
    const first = await runClient(opts, quiet);
    const more = await runClient({ ...opts, count: 3 }, quiet);
    expect(more.kept.sort()).toEqual([...first.pubkeys].sort());
    expect(more.written).toHaveLength(1);
  });

  it('refuses keys the server no longer gives this pod, and changes nothing', async () => {
    const { url } = await startTestServer();
    const opts = await options(url, 'lighthouse');
    await runClient(opts, quiet);
    await http(url, 'DELETE', '/v1/pods/validator-0/keys');
    // Another pod name on the same folder: the server gives it other keys.
    const other = { ...opts, pod: 'validator-1' };
    const before = await snapshot(opts.out);
    await expect(runClient(other, quiet)).rejects.toMatchObject({
      code: 'OUT_DIR_CONFLICT',
      exitCode: 6,
    });
    expect(await snapshot(opts.out)).toEqual(before);
  });

  it('refuses a --password-file that is not the password the keystores were written with', async () => {
    const { url } = await startTestServer();
    const opts = await options(url, 'nimbus');
    await runClient(opts, quiet);
    await writeFile(opts.passwordFile, 'another password');
    await expect(runClient(opts, quiet)).rejects.toMatchObject({ code: 'OUT_DIR_CONFLICT' });
  });

  it('with --shared-kdf, writes valid keystores that share one salt', async () => {
    const { url } = await startTestServer();
    const opts = await options(url, 'teku', { sharedKdf: true, count: 3 });
    const summary = await runClient(opts, quiet);
    const password = await readFile(opts.passwordFile, 'utf8');
    const salts = new Set<string>();
    for (const pk of summary.pubkeys) {
      const ks = JSON.parse(await readFile(join(opts.out, `keys/${pk}.json`), 'utf8')) as {
        crypto: { kdf: { params: { salt: string } }; cipher: { params: { iv: string } } };
      };
      salts.add(ks.crypto.kdf.params.salt);
      expect(publicKeyOf(await decryptKeystore(ks, password))).toBe(pk);
    }
    expect(salts.size).toBe(1);
  });

  it('waits out a rate limit (429 with Retry-After) and then gets its keys', async () => {
    const { url, clock } = await startTestServer({ rateLimitPerMinute: 60 });
    for (let i = 0; i < 60; i++) await http(url, 'POST', '/v1/pods/validator-0/keys', { count: 2 }); // the whole bucket
    const limited = await http(url, 'POST', '/v1/pods/validator-0/keys', { count: 2 });
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '1']);
    setTimeout(() => clock.advance(60_000), 100); // the server's minute passes while it waits
    const started = Date.now();
    const summary = await runClient(await options(url, 'lighthouse', { count: 2 }), quiet);
    expect(summary.pubkeys).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // it waited Retry-After: 1 s
  });

  it('does not retry a refusal (4xx): it fails at once with the server code and exit 3', async () => {
    const { url } = await startTestServer({ maxKeysPerPod: 2 });
    const opts = await options(url, 'lighthouse', { count: 3, timeoutMs: 60_000 });
    const started = Date.now();
    const err = await runClient(opts, quiet).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COUNT_OUT_OF_RANGE' });
    expect((err as PkmError).exitCode).toBe(ExitCode.refused);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

async function snapshot(dir: string): Promise<Record<string, string>> {
  const { readdir } = await import('node:fs/promises');
  const files = await readdir(dir, { recursive: true, withFileTypes: true });
  const out: Record<string, string> = {};
  for (const f of files) {
    if (f.isFile())
      out[join(f.parentPath, f.name)] = await readFile(join(f.parentPath, f.name), 'utf8');
  }
  return out;
}

describe('pkm client in a namespace', () => {
  it('asks for the keys of namespace/pod, a pod apart from the same name in default', async () => {
    const { url } = await startTestServer();
    const inNs = await runClient(await options(url, 'teku', { namespace: 'validators' }), quiet);
    const inDefault = await runClient(await options(url, 'teku'), quiet);
    expect(inNs.pubkeys.some((pk) => inDefault.pubkeys.includes(pk))).toBe(false);
    const listed = (await http<{ pods: Record<string, string[]> }>(url, 'GET', '/v1/assignments'))
      .body.pods;
    expect(listed['validators/validator-0']?.sort()).toEqual([...inNs.pubkeys].sort());
    expect(listed['validator-0']?.sort()).toEqual([...inDefault.pubkeys].sort());
  });
});

describe('pkm client and slashing protection', () => {
  it('writes slashing_protection.json (EIP-3076) for keys that come with history', async () => {
    const gvr = `0x${'21'.repeat(32)}`;
    const { url, clock } = await startTestServer({
      reuseDelayMs: MINUTE,
      beacon: { genesisTime: 1_700_000_000, genesisValidatorsRoot: gvr },
    });
    const old = await runClient(
      await options(url, 'lighthouse', { pod: 'old-0', count: 1 }),
      quiet,
    );
    await http(url, 'DELETE', '/v1/pods/old-0/keys');
    clock.advance(MINUTE);
    const opts = await options(url, 'lighthouse', { pod: 'new-0', count: 1 });
    const summary = await runClient(opts, quiet);
    expect(summary.pubkeys).toEqual(old.pubkeys);
    expect(summary.files).toContain('slashing_protection.json');
    const file = join(opts.out, 'slashing_protection.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const interchange = JSON.parse(await readFile(file, 'utf8')) as {
      metadata: { genesis_validators_root: string };
      data: Array<{ pubkey: string }>;
    };
    expect(interchange.metadata.genesis_validators_root).toBe(gvr);
    expect(interchange.data.map((d) => d.pubkey)).toEqual(old.pubkeys);
  });
});
