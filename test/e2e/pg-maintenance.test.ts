// The offline commands on a PostgreSQL store (issue 15, point 6), as operators run them (the
// built CLI): pkm db check and pkm deposits export read one snapshot beside a running server;
// pkm keys import is refused while any server runs on the database, as on a LevelDB data dir;
// pkm db backup and restore, LevelDB's own format, refuse --store and say what to do instead.
// Skipped only where PostgreSQL is not installed.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { randomKey, toHex } from '../../src/keys/bls.js';
import { encryptKeystore } from '../../src/keys/keystore.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { type AllocationBody, http, onCleanup, tempDir } from '../helpers.js';
import { adminQuery, newDatabase } from '../support/pg-databases.js';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

const bins = await findPostgres();
const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';

async function kekFile(): Promise<string> {
  const file = join(await tempDir(), 'kek');
  await writeFile(file, `${'4d'.repeat(32)}\n`, { mode: 0o600 });
  rememberSecret('4d'.repeat(32));
  return file;
}

async function pkm(args: string[]): Promise<{ exit: number | string; out: string; err: string }> {
  const child = runPkm(args);
  const exit = await child.exited;
  return { exit, out: child.stdout.join('\n'), err: child.stderr.join('\n') };
}

describe.skipIf(bins === undefined)('offline commands on PostgreSQL (built CLI)', () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });

  it('pkm db check: clean beside a server that allocates, and names what a damaged database lacks', async () => {
    const url = await newDatabase(cluster(), 'pkm_check');
    const server = await startServerProcess(['--store', url, '--kek-file', await kekFile()]);
    const pods = Array.from({ length: 12 }, (_, i) => `validator-${i}`);
    // Checks run while pods allocate: each reads one snapshot, so each is clean (that a commit
    // made during a snapshot is not seen is shown in test/store/pg-presence.test.ts).
    const [checks, answers] = await Promise.all([
      Promise.all([0, 1, 2].map(() => pkm(['db', 'check', '--store', url]))),
      Promise.all(
        pods.map((pod) =>
          http<AllocationBody>(server.url, 'POST', `/v1/pods/${pod}/keys`, { count: 3 }),
        ),
      ),
    ]);
    for (const a of answers) expect(a.status).toBe(200);
    for (const c of checks) {
      expect(c.exit).toBe(0);
      expect(JSON.parse(c.out)).toMatchObject({ problems: [] });
    }
    const settled = await pkm(['db', 'check', '--store', url]);
    expect(JSON.parse(settled.out)).toEqual({ keys: 36, pods: 12, problems: [] });

    // A pod row lost behind pkm's back: its keys are allocated to a pod with no record.
    await adminQuery(cluster(), 'pkm_check', "DELETE FROM pkm_pods WHERE name = 'validator-0'");
    const damaged = await pkm(['db', 'check', '--store', url]);
    expect(damaged.exit).toBe(ExitCode.store);
    const report = JSON.parse(damaged.out) as { problems: string[] };
    // Its three keys, and the pods counter (12 stored, 11 pods hold keys).
    expect(
      report.problems.filter((p) => /of validator-0 is missing from that pod/.test(p)),
    ).toHaveLength(3);
    expect(report.problems.filter((p) => !p.includes('validator-0'))).toEqual([
      'counter pods is 12, but the store holds 11',
    ]);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 90_000);

  it('pkm deposits export: the deposit data a running server serves, from the database', async () => {
    const url = await newDatabase(cluster(), 'pkm_deposits');
    const server = await startServerProcess([
      '--store',
      url,
      '--kek-file',
      await kekFile(),
      '--network',
      'hoodi',
      '--withdrawal-address',
      ADDRESS,
    ]);
    const a = await http<AllocationBody>(server.url, 'POST', '/v1/pods/a/keys', { count: 2 });
    await http(server.url, 'POST', '/v1/pods/b/keys', { count: 1 });
    const served = (await http<Array<{ pubkey: string }>>(server.url, 'GET', '/v1/deposits')).body;
    expect(served).toHaveLength(3);
    const dir = await tempDir();
    const all = join(dir, 'all.json');
    const forA = join(dir, 'a.json');
    const exported = await pkm(['deposits', 'export', '--store', url, '--out', all]);
    expect(exported.exit).toBe(0);
    expect(JSON.parse(exported.out)).toEqual({ out: all, deposits: 3 });
    const file = JSON.parse(await readFile(all, 'utf8')) as Array<{ pubkey: string }>;
    expect(file.map((e) => e.pubkey).sort()).toEqual(served.map((e) => e.pubkey).sort());
    expect(
      (await pkm(['deposits', 'export', '--store', url, '--pod', 'a', '--out', forA])).exit,
    ).toBe(0);
    const mine = JSON.parse(await readFile(forA, 'utf8')) as Array<{ pubkey: string }>;
    expect(mine.map((e) => `0x${e.pubkey}`).sort()).toEqual(
      a.body.keys.map((k) => k.pubkey).sort(),
    );
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 90_000);

  it('pkm keys import: refused while a server runs (nothing imported), then imported and served', async () => {
    const url = await newDatabase(cluster(), 'pkm_import');
    const kek = await kekFile();
    const dir = await tempDir();
    const src = join(dir, 'validator_keys');
    await mkdir(src);
    const made = Array.from({ length: 3 }, () => randomKey());
    const password = 'import-pw-5c1d';
    rememberSecret(password);
    for (const [i, k] of made.entries()) {
      rememberSecret(toHex(k.secretKey).slice(2));
      const keystore = await encryptKeystore(
        k.secretKey,
        password,
        { pubkey: k.pubkey, path: '' },
        'pbkdf2',
        { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } },
      );
      await writeFile(join(src, `keystore-${i}.json`), JSON.stringify(keystore));
    }
    const pwFile = join(dir, 'password.txt');
    await writeFile(pwFile, password, { mode: 0o600 });
    const importArgs = [
      'keys',
      'import',
      '--store',
      url,
      '--kek-file',
      kek,
      '--keystores',
      src,
      '--password-file',
      pwFile,
      '--never-validated',
    ];
    const args = ['--store', url, '--kek-file', kek, '--new-keys', 'never'];
    const running = await startServerProcess(args);
    const refused = await pkm(importArgs);
    expect(refused.exit).toBe(ExitCode.store);
    expect(refused.err).toMatch(
      /STORE_LOCKED: 1 pkm server is running on this database: stop every server first/,
    );
    const before = await http<{ error: { code: string } }>(
      running.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 1 },
    );
    expect(before.body.error.code).toBe('POOL_EXHAUSTED');
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);

    const imported = await pkm(importArgs);
    expect(imported.exit).toBe(0);
    expect(JSON.parse(imported.out)).toMatchObject({ skipped: [], failed: [] });
    expect((JSON.parse(imported.out) as { imported: string[] }).imported).toHaveLength(3);
    expect(JSON.parse((await pkm(['db', 'check', '--store', url])).out)).toMatchObject({
      keys: 3,
      problems: [],
    });
    // A server on the database hands them out, their secrets opened with the same KEK.
    const server = await startServerProcess(args);
    const got = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 3,
    });
    expect(got.status).toBe(200);
    const want = made.map((k) => [k.pubkey, toHex(k.secretKey)]).sort();
    expect(got.body.keys.map((k) => [k.pubkey, k.secretKey]).sort()).toEqual(want);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 90_000);

  it('a server is refused while a maintenance command has the database, and pkm db copy while a server runs', async () => {
    const url = await newDatabase(cluster(), 'pkm_alone');
    const kek = await kekFile();
    // What pkm db rotate-kek or pkm keys import holds while they run.
    const maintenance = await PgStore.open(url, { presence: 'alone' });
    onCleanup(() => maintenance.close());
    const server = runPkm(['server', '--listen', '127.0.0.1:0', '--store', url, '--kek-file', kek]);
    expect(await server.exited).toBe(ExitCode.store);
    expect(server.stderr.join('\n')).toMatch(
      /STORE_LOCKED: a maintenance command .* is running on this database: wait until it has finished/,
    );
    await maintenance.close();

    const running = await startServerProcess(['--store', url, '--kek-file', kek]);
    const to = join(await tempDir(), 'copy');
    const copy = await pkm(['db', 'copy', '--from', url, '--to', to, '--kek-file', kek]);
    expect(copy.exit).toBe(ExitCode.store);
    expect(copy.err).toMatch(/STORE_LOCKED: 1 pkm server is running on this database/);
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect((await pkm(['db', 'copy', '--from', url, '--to', to, '--kek-file', kek])).exit).toBe(0);
  }, 60_000);

  it('pkm db backup and restore refuse --store, and say what to do instead', async () => {
    const url = await newDatabase(cluster(), 'pkm_backup');
    const dir = await tempDir();
    const backup = await pkm(['db', 'backup', '--store', url, '--out', join(dir, 'b.jsonl')]);
    expect(backup.exit).toBe(ExitCode.usage);
    expect(backup.err).toMatch(
      /^pkm: INVALID_CONFIG: pkm db backup works on a LevelDB --data-dir only, not on a PostgreSQL --store: back the database up with pg_dump .*pkm db copy --from postgres:\/\/… --to \.\/copy, then pkm db backup --data-dir \.\/copy$/,
    );
    const restore = await pkm(['db', 'restore', '--store', url, '--from', join(dir, 'b.jsonl')]);
    expect(restore.exit).toBe(ExitCode.usage);
    expect(restore.err).toMatch(
      /INVALID_CONFIG: pkm db restore works on a LevelDB --data-dir only.*pkm db restore --data-dir \.\/restored --from FILE\), then pkm db copy --from \.\/restored --to postgres:\/\//,
    );
    // Refused before anything opened: the database has no pkm table.
    const tables = await adminQuery<{ n: number }>(
      cluster(),
      'pkm_backup',
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename LIKE 'pkm\\_%'",
    );
    expect(tables.rows[0]?.n).toBe(0);
  }, 30_000);

  it('the store flags are checked as pkm server checks them, before anything connects', async () => {
    const url = await newDatabase(cluster(), 'pkm_flags');
    const cases: Array<[string[], RegExp]> = [
      [
        ['db', 'rotate-kek', '--store', url, '--new-kek-file', '/nonexistent'],
        /INVALID_CONFIG: --store postgres:\/\/… needs --kek-file/,
      ],
      [
        ['keys', 'import', '--store', url, '--keystores', '/nonexistent'],
        /INVALID_CONFIG: --store postgres:\/\/… needs --kek-file/,
      ],
      [
        ['db', 'check', '--store', url.replace('pkm@', 'pkm:hunter2@')],
        /INVALID_CONFIG: --store must not hold the password/,
      ],
      [['deposits', 'export', '--store', `${url}?sslmode=disable`], /takes no query parameters/],
      [['db', 'check', '--store-ssl-mode', 'require'], /--store-ssl-mode needs a PostgreSQL store/],
      [
        ['db', 'check', '--store', url, '--store-password-file', '/nonexistent'],
        /INVALID_CONFIG: --store-password-file/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await pkm(args);
      expect([args, run.exit]).toEqual([args, ExitCode.usage]);
      expect(run.err).toMatch(message);
      expect(run.err).not.toContain('hunter2');
    }
    const tables = await adminQuery<{ n: number }>(
      cluster(),
      'pkm_flags',
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename LIKE 'pkm\\_%'",
    );
    expect(tables.rows[0]?.n).toBe(0);
  }, 60_000);
});
