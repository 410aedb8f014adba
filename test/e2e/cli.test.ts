import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir, until } from '../helpers.js';
import { mnemonic, TEST_MNEMONIC } from '../support/allocator.js';
import { runPkm, startServerProcess } from './spawn.js';

describe('pkm server', () => {
  it('on SIGTERM finishes the request in flight, closes the store and exits 0', async () => {
    const dir = await tempDir();
    const server = await startServerProcess(['--data-dir', dir]);
    const inFlight = http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 64,
    });
    await new Promise((r) => setTimeout(r, 20));
    server.proc.kill('SIGTERM');
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(await server.exited).toBe(ExitCode.ok);
    // The logs saw the request, and none of the secrets it carried.
    const logs = [...server.stdout, ...server.stderr].join('\n');
    expect(logs).toMatch(/"route":"\/v1\/pods\/:pod\/keys"/);
    for (const k of answer.body.keys) expect(logs).not.toContain(k.secretKey.slice(2));
    const store = await Store.open(dir);
    expect(store.storedCounts().allocated).toBe(64);
    await store.close();
  });

  it('refuses a data dir another server holds, saying so in one line (exit 5)', async () => {
    const dir = await tempDir();
    await startServerProcess(['--data-dir', dir]);
    const second = runPkm(['server', '--data-dir', dir, '--listen', '127.0.0.1:0']);
    expect(await second.exited).toBe(ExitCode.store);
    expect(second.stderr).toEqual([
      expect.stringMatching(/^pkm: STORE_LOCKED: .*already in use by another process/),
    ]);
  });

  it.each([
    [['--reuse-delay', 'soon'], /--reuse-delay takes a duration .* e\.g\. --reuse-delay 20m/],
    [['--max-keys-per-pod', '0'], /--max-keys-per-pod takes a whole number from 1 .* e\.g\./],
    [
      ['--listen', 'localhost'],
      /--listen takes host:port, not "localhost", e\.g\. --listen 127\.0\.0\.1:8000/,
    ],
    [['--log-level', 'loud'], /--log-level is one of/],
  ])('refuses bad flags %j with exit 2 and an example', async (args, message) => {
    const child = runPkm(['server', ...args]);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr).toEqual([expect.stringMatching(message)]);
  });

  it('checks the token and TLS files before it makes a store: a refusal leaves no data dir', async () => {
    const dir = await tempDir();
    const short = join(dir, 'short-token');
    await writeFile(short, 'ab'.repeat(16));
    const notPem = join(dir, 'not.pem');
    await writeFile(notPem, 'not a certificate');
    const cases: Array<[string[], RegExp]> = [
      [['--auth-token-file', short], /--auth-token-file .* at least 256 bits/],
      [
        ['--auth-token-file', join(dir, 'none')],
        /--auth-token-file names a file that cannot be read/,
      ],
      [
        ['--tls-cert', notPem, '--tls-key', notPem],
        /--tls-cert, --tls-key or --webhook-client-ca do not make a TLS context/,
      ],
      [['--tls-cert', join(dir, 'none'), '--tls-key', notPem], /cannot read --tls-cert/],
      [['--webhook-client-ca', notPem], /--webhook-client-ca needs --tls-cert/],
      [['--rate-limit', 'lots'], /--rate-limit takes a whole number/],
      [['--mnemonic-start-index', '5'], /--mnemonic-start-index needs --mnemonic-file/],
      [['--new-keys', 'sometimes'], /--new-keys is always or never/],
    ];
    for (const [args, message] of cases) {
      const data = join(dir, 'data');
      const child = runPkm(['server', '--data-dir', data, ...args]);
      expect([args, await child.exited]).toEqual([args, ExitCode.usage]);
      expect(child.stderr).toEqual([expect.stringMatching(message)]);
      await expect(stat(data)).rejects.toThrow(/ENOENT/); // no store, no KEK made
    }
    // Eight starts of pkm in turn, about a second each here: 30 s ran out in a CI run that
    // shared the machine with another test process.
  }, 90_000);

  it('refuses to listen beyond loopback without auth; --insecure starts, with a warning', async () => {
    const dir = await tempDir();
    const refused = runPkm(['server', '--data-dir', dir, '--listen', '0.0.0.0:0']);
    expect(await refused.exited).toBe(ExitCode.usage);
    expect(refused.stderr).toEqual([
      expect.stringMatching(
        /^pkm: INVALID_CONFIG: refusing to listen on 0\.0\.0\.0:0 without authentication.*--auth-token-file.*--insecure/,
      ),
    ]);
    const insecure = runPkm(['server', '--data-dir', dir, '--listen', '0.0.0.0:0', '--insecure']);
    await until(() => insecure.stdout.some((l) => l.includes('"listening"')));
    expect(insecure.stdout.some((l) => l.includes('--insecure: no authentication'))).toBe(true);
    insecure.proc.kill('SIGTERM');
    expect(await insecure.exited).toBe(ExitCode.ok);
  });

  it('exits 2 on an unknown flag', async () => {
    const child = runPkm(['server', '--no-such-flag']);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr.join('\n')).toMatch(/unknown option '--no-such-flag'/);
  });

  it('takes every flag from PKM_* env as well', async () => {
    const dir = await tempDir();
    const child = runPkm(['server'], {
      PKM_DATA_DIR: dir,
      PKM_LISTEN: '127.0.0.1:0',
      PKM_MAX_KEYS_PER_POD: '3',
    });
    const deadline = Date.now() + 10_000;
    let url: string | undefined;
    while (!url && Date.now() < deadline) {
      url = child.stdout.map((l) => JSON.parse(l) as { url?: string }).find((m) => m.url)?.url;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(url).toBeDefined();
    const res = await http(url ?? '', 'POST', '/v1/pods/a/keys', { count: 4 });
    expect(res.body.error.code).toBe('COUNT_OUT_OF_RANGE');
    expect(res.body.error.message).toMatch(/from 1 to 3/);
  });
});

describe('pkm server --new-keys and --mnemonic-start-index (issue 14)', () => {
  it('PKM_NEW_KEYS=never: an empty pool is 503 POOL_EXHAUSTED naming the imports, and status says why', async () => {
    const dir = await tempDir();
    const server = await startServerProcess(['--data-dir', dir], { PKM_NEW_KEYS: 'never' });
    const res = await http(server.url, 'POST', '/v1/pods/a/keys', { count: 1 });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('60');
    expect(res.body.error.code).toBe('POOL_EXHAUSTED');
    expect(res.body.error.message).toMatch(/pkm keys import or POST \/eth\/v1\/keystores/);
    const status = await http<{ pool: { newKeys: string; canCreate: boolean } }>(
      server.url,
      'GET',
      '/v1/status',
    );
    expect(status.body.pool).toMatchObject({ newKeys: 'never', canCreate: false });
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(ExitCode.ok);
    const store = await Store.open(dir);
    expect(store.storedCounts()).toMatchObject({ free: 0, allocated: 0 });
    await store.close();
  });

  it('PKM_MNEMONIC_START_INDEX=5: the first key is derived at m/12381/3600/5/0/0', async () => {
    const dir = await tempDir();
    const file = join(dir, 'mnemonic');
    await writeFile(file, `${TEST_MNEMONIC}\n`, { mode: 0o600 });
    const server = await startServerProcess(
      ['--data-dir', join(dir, 'data'), '--mnemonic-file', file, '--resync-window', '0'],
      { PKM_MNEMONIC_START_INDEX: '5' },
    );
    expect(server.stdout.join('\n')).toMatch(/moved up to --mnemonic-start-index/);
    const res = await http<AllocationBody>(server.url, 'POST', '/v1/pods/a/keys', { count: 1 });
    expect(res.status).toBe(200);
    expect(res.body.keys.map((k) => k.path)).toEqual(['m/12381/3600/5/0/0']);
    expect(res.body.keys[0]?.pubkey).toBe(mnemonic.pubkeyAt?.(5));
  });
});

describe('pkm release and pkm assignments', () => {
  it('release a pod and list assignments against a running server', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    await http(server.url, 'POST', '/v1/pods/validator-0/keys', { count: 2 });
    await http(server.url, 'POST', '/v1/pods/validator-1/keys', { count: 1 });

    const list = runPkm(['assignments', '--server', server.url, '--json']);
    expect(await list.exited).toBe(0);
    const parsed = JSON.parse(list.stdout.join('\n')) as { pods: Record<string, string[]> };
    expect(Object.keys(parsed.pods)).toEqual(['validator-0', 'validator-1']);

    const release = runPkm(['release', '--server', server.url], { POD_NAME: 'validator-0' });
    expect(await release.exited).toBe(0);
    expect(JSON.parse(release.stdout.join(''))).toEqual({
      pod: 'validator-0',
      released: parsed.pods['validator-0'],
    });

    const table = runPkm(['assignments'], { PKM_SERVER: server.url });
    expect(await table.exited).toBe(0);
    expect(table.stdout.join('\n')).toMatch(/^cooling +2$/m);
    expect(table.stdout.join('\n')).toMatch(/^validator-1\t1\t0x[0-9a-f]{96}$/m);
  });

  it('pkm release --interchange uploads the slashing history, then releases', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir()]);
    const res = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/namespaces/vals/pods/v-0/keys',
      { count: 1 },
    );
    const pubkey = res.body.keys[0]?.pubkey ?? '';
    const file = join(await tempDir(), 'interchange.json');
    const gvr = `0x${'21'.repeat(32)}`;
    await writeFile(
      file,
      JSON.stringify({
        metadata: { interchange_format_version: '5', genesis_validators_root: gvr },
        data: [
          {
            pubkey,
            signed_blocks: [{ slot: '81' }],
            signed_attestations: [{ source_epoch: '1', target_epoch: '2' }],
          },
        ],
      }),
    );
    const releaseWith = (interchange: string) =>
      runPkm([
        'release',
        '--server',
        server.url,
        '--pod',
        'v-0',
        '--namespace',
        'vals',
        '--interchange',
        interchange,
      ]);
    const release = releaseWith(file);
    expect(await release.exited).toBe(0);
    expect(JSON.parse(release.stdout.join(''))).toEqual({
      namespace: 'vals',
      pod: 'v-0',
      released: [pubkey],
      protection: { pubkeys: [pubkey], ignored: [] },
    });
    expect(release.stderr).toEqual([]);
    const again = await http<{ keys: Array<{ slashingProtection?: { data: unknown[] } }> }>(
      server.url,
      'POST',
      '/v1/namespaces/vals/pods/v-0/keys',
      { count: 1 },
    );
    expect(again.body.keys[0]?.slashingProtection?.data).toEqual([
      {
        pubkey,
        signed_blocks: [{ slot: '81' }],
        signed_attestations: [{ source_epoch: '1', target_epoch: '2' }],
      },
    ]);
    const bad = releaseWith(join(await tempDir(), 'missing.json'));
    expect(await bad.exited).toBe(ExitCode.usage);
    expect(bad.stderr.join('')).toMatch(/INVALID_INTERCHANGE/);
  });

  it.each([
    [['keys', 'retire', '0x1234', '--server', 'http://127.0.0.1:9'], /^pkm: INVALID_PUBKEY: /],
    [['deposits', 'export', '--state', 'lost'], /^pkm: INVALID_CONFIG: --state is one of/],
    [
      ['agent', '--server', 'http://127.0.0.1:9', '--pod', 'p'],
      /^pkm: INVALID_CONFIG: --out is required/,
    ],
    [
      [
        'agent',
        '--server',
        'http://127.0.0.1:9',
        '--pod',
        'p',
        '--out',
        '/tmp/x',
        '--interval',
        'often',
      ],
      /--interval takes a duration/,
    ],
    [
      ['release', '--server', 'http://127.0.0.1:9', '--pod', 'p', '--namespace', 'Bad_NS'],
      /^pkm: INVALID_NAMESPACE: /,
    ],
    [['status'], /^pkm: INVALID_CONFIG: --server is required/],
    [['status', '--server', 'ftp://x'], /^pkm: INVALID_CONFIG: --server must be http or https/],
    [
      ['assignments', '--server', 'http://127.0.0.1:9', '--ca-file', '/nonexistent/ca.pem'],
      /^pkm: INVALID_CONFIG: --ca-file \/nonexistent\/ca\.pem cannot be read \(ENOENT\)/,
    ],
    [
      ['assignments', '--server', 'http://127.0.0.1:9', '--token-file', '/nonexistent/token'],
      /^pkm: INVALID_CONFIG: --token-file \/nonexistent\/token cannot be read/,
    ],
    [['db', 'backup', '--data-dir', '/nonexistent/d'], /^pkm: INVALID_CONFIG: --out is required/],
    [['db', 'restore', '--data-dir', '/nonexistent/d'], /^pkm: INVALID_CONFIG: --from is required/],
    [
      ['db', 'restore', '--data-dir', '/nonexistent/d', '--from', '/nonexistent/b'],
      /^pkm: INVALID_CONFIG: --from \/nonexistent\/b cannot be read/,
    ],
    [
      ['db', 'rotate-kek', '--data-dir', '/nonexistent/d'],
      /^pkm: INVALID_CONFIG: --new-kek-file is required/,
    ],
    [
      [
        'db',
        'rotate-kek',
        '--data-dir',
        '/nonexistent/d',
        '--new-kek-file',
        '/x',
        '--batch-size',
        '0',
      ],
      /^pkm: INVALID_CONFIG: --batch-size takes a whole number from 1/,
    ],
    [
      ['db', 'rotate-kek', '--data-dir', '/nonexistent/d', '--new-kek-file', '/nonexistent/k'],
      /^pkm: INVALID_CONFIG: --kek-file \/nonexistent\/k cannot be read/,
    ],
  ])('refuses bad input to pkm %j with exit 2 and one line', async (args, message) => {
    const child = runPkm(args);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr).toEqual([expect.stringMatching(message)]);
  });

  it('exits 2 for a bad pod name, and 4 when the server cannot be reached', async () => {
    const bad = runPkm(['release', '--server', 'http://127.0.0.1:9', '--pod', 'Not_A_Pod']);
    expect(await bad.exited).toBe(ExitCode.usage);
    expect(bad.stderr).toEqual([expect.stringMatching(/^pkm: INVALID_POD_NAME: /)]);
    const down = runPkm(['assignments', '--server', 'http://127.0.0.1:9']);
    expect(await down.exited).toBe(ExitCode.unavailable);
    expect(down.stderr).toEqual([
      expect.stringMatching(/^pkm: SERVER_UNREACHABLE: cannot reach http:\/\/127\.0\.0\.1:9/),
    ]);
  });
});
