// `pkm server --store postgres://…` against a really configured PostgreSQL (issue 15, point 1):
// scram-sha-256 with the password from --store-password-file, and TLS in each of the modes
// store-config.ts takes. Refusals are coded and fixed by configuration (STORE_LOGIN_REFUSED,
// STORE_UNTRUSTED, INVALID_CONFIG), say no password, and leave the database untouched. The
// built CLI is run, as operators run it. Skipped only where PostgreSQL is not installed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { type AllocationBody, http } from '../helpers.js';
import { makeCert, signCert } from '../support/certs.js';
import { newDatabase, pkmTables, sessionsByTls } from '../support/pg-databases.js';
import { findPostgres, type PgServer, startPostgres } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { type Child, runPkm, startServerProcess } from './spawn.js';

const bins = await findPostgres();
const PASSWORD = 'db-pw-8d2c91f04e7a';
const WRONG = 'db-pw-wrong-3b5e77';

interface Setup {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  readonly kek: string;
  readonly passwordFile: string;
  readonly wrongFile: string;
  /** TLS only, scram-sha-256; its certificate names IP:127.0.0.1, signed by `ca`. */
  readonly secure: PgServer;
  /** TLS offered, trust; its certificate names only db.example, signed by `ca`. */
  readonly misnamed: PgServer;
}

async function setUp(): Promise<Setup> {
  // Not tempDir(): that one goes after each test, and these files serve every test.
  const dir = await mkdtemp(join(tmpdir(), 'pkm-pg-tls-'));
  const ca = await makeCert(dir, 'db-ca');
  const otherCa = await makeCert(dir, 'other-ca');
  const right = await signCert(dir, 'db-ip', ca, 'serverAuth', 'IP:127.0.0.1');
  const wrongName = await signCert(dir, 'db-name', ca, 'serverAuth', 'DNS:db.example');
  const kek = join(dir, 'kek');
  await writeFile(kek, `${'6e'.repeat(32)}\n`, { mode: 0o600 });
  const passwordFile = join(dir, 'db-password');
  const wrongFile = join(dir, 'db-password-wrong');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  await writeFile(wrongFile, `${WRONG}\n`, { mode: 0o600 });
  for (const s of [PASSWORD, WRONG, '6e'.repeat(32)]) rememberSecret(s);
  const pg = bins ?? { initdb: '', pgCtl: '' };
  const secure = await startPostgres(pg, { password: PASSWORD, tls: { ...right, only: true } });
  const misnamed = await startPostgres(pg, { tls: wrongName }).catch(async (err: unknown) => {
    await secure.stop();
    throw err;
  });
  return {
    dir,
    ca: ca.cert,
    otherCa: otherCa.cert,
    kek,
    passwordFile,
    wrongFile,
    secure,
    misnamed,
  };
}

/** `pkm server` that is expected to refuse to start: its exit code and its output. */
async function refusedStart(args: string[]): Promise<{ exit: number | string; text: string }> {
  const child: Child = runPkm(['server', '--listen', '127.0.0.1:0', ...args]);
  const exit = await child.exited;
  return { exit, text: [...child.stdout, ...child.stderr].join('\n') };
}

describe.skipIf(bins === undefined)('pkm server on a PostgreSQL with a password and TLS', () => {
  // Two clusters and the files for the whole file, stopped and removed after it.
  let s: Setup | undefined;
  beforeAll(async () => {
    s = await setUp();
  }, 90_000);
  afterAll(async () => {
    await s?.secure.stop();
    await s?.misnamed.stop();
    if (s) await rm(s.dir, { recursive: true, force: true });
  }, 60_000);
  const setup = async (): Promise<Setup> => {
    if (!s) throw new Error('the clusters did not start');
    return s;
  };

  it('serves with the password and verify-full against the right CA, over TLS', async () => {
    const { secure, passwordFile, ca, kek } = await setup();
    const url = await newDatabase(secure, 'pkm_verified');
    const server = await startServerProcess([
      '--store',
      url,
      '--store-password-file',
      passwordFile,
      '--store-ssl-mode',
      'verify-full',
      '--store-ca-file',
      ca,
      '--kek-file',
      kek,
    ]);
    const res = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    expect(res.status).toBe(200);
    for (const k of res.body.keys) rememberSecret(k.secretKey);
    expect((await http(server.url, 'GET', '/readyz')).status).toBe(200);
    // The cluster refuses cleartext (hostnossl reject); pg_stat_ssl shows it all the same.
    const sessions = await sessionsByTls(secure, 'pkm_verified');
    expect(sessions.tls).toBeGreaterThan(0);
    expect(sessions.clear).toBe(0);
    expect(await pkmTables(secure, 'pkm_verified')).toContain('pkm_keys');
    const text = [...server.stdout, ...server.stderr].join('\n');
    expect(text).not.toContain(PASSWORD);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 60_000);

  it('serves with require (encrypted, the certificate unchecked)', async () => {
    const { secure, passwordFile, kek } = await setup();
    const url = await newDatabase(secure, 'pkm_required');
    const server = await startServerProcess([
      '--store',
      url,
      '--store-password-file',
      passwordFile,
      '--store-ssl-mode',
      'require',
      '--kek-file',
      kek,
    ]);
    expect((await http(server.url, 'GET', '/v1/assignments')).status).toBe(200);
    expect((await sessionsByTls(secure, 'pkm_required')).tls).toBeGreaterThan(0);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 60_000);

  it('a wrong or missing password: STORE_LOGIN_REFUSED, exit 2, no password said, no table', async () => {
    const { secure, passwordFile, wrongFile, ca, kek } = await setup();
    const url = await newDatabase(secure, 'pkm_wrong_password');
    const tls = ['--store-ssl-mode', 'verify-full', '--store-ca-file', ca];
    const wrong = await refusedStart([
      '--store',
      url,
      '--store-password-file',
      wrongFile,
      ...tls,
      '--kek-file',
      kek,
    ]);
    expect(wrong.exit).toBe(ExitCode.usage);
    expect(wrong.text).toMatch(
      /STORE_LOGIN_REFUSED: PostgreSQL refused the login: password authentication failed for user "pkm"/,
    );
    const none = await refusedStart(['--store', url, ...tls, '--kek-file', kek]);
    expect(none.exit).toBe(ExitCode.usage);
    expect(none.text).toMatch(
      /STORE_LOGIN_REFUSED: PostgreSQL asks for a password .*--store-password-file/,
    );
    // Cleartext to a TLS-only cluster: pg_hba.conf refuses it, also a login refusal.
    const clear = await refusedStart([
      '--store',
      url,
      '--store-password-file',
      passwordFile,
      '--store-ssl-mode',
      'disable',
      '--kek-file',
      kek,
    ]);
    expect(clear.exit).toBe(ExitCode.usage);
    expect(clear.text).toMatch(/STORE_LOGIN_REFUSED: .*no encryption/);
    for (const { text } of [wrong, none, clear]) {
      expect(text).not.toContain(WRONG);
      expect(text).not.toContain(PASSWORD);
    }
    expect(await pkmTables(secure, 'pkm_wrong_password')).toEqual([]);
  }, 60_000);

  it('verify-full against an unknown CA, or a certificate for another name: STORE_UNTRUSTED', async () => {
    const { secure, misnamed, passwordFile, ca, otherCa, kek } = await setup();
    const url = await newDatabase(secure, 'pkm_unknown_ca');
    const unknown = await refusedStart([
      '--store',
      url,
      '--store-password-file',
      passwordFile,
      '--store-ssl-mode',
      'verify-full',
      '--store-ca-file',
      otherCa,
      '--kek-file',
      kek,
    ]);
    expect(unknown.exit).toBe(ExitCode.usage);
    expect(unknown.text).toMatch(/STORE_UNTRUSTED: the database's TLS certificate does not verify/);
    expect(await pkmTables(secure, 'pkm_unknown_ca')).toEqual([]);

    // The right CA, but the certificate names db.example, not the 127.0.0.1 connected to.
    const other = await newDatabase(misnamed, 'pkm_misnamed');
    const misnamedStart = await refusedStart([
      '--store',
      other,
      '--store-ssl-mode',
      'verify-full',
      '--store-ca-file',
      ca,
      '--kek-file',
      kek,
    ]);
    expect(misnamedStart.exit).toBe(ExitCode.usage);
    expect(misnamedStart.text).toMatch(/STORE_UNTRUSTED: .*127\.0\.0\.1 is not in the cert's list/);
    expect(await pkmTables(misnamed, 'pkm_misnamed')).toEqual([]);
    // With require, the same certificate is not checked: the server starts.
    const unchecked = await startServerProcess([
      '--store',
      other,
      '--store-ssl-mode',
      'require',
      '--kek-file',
      kek,
    ]);
    expect((await sessionsByTls(misnamed, 'pkm_misnamed')).tls).toBeGreaterThan(0);
    unchecked.proc.kill('SIGTERM');
    expect(await unchecked.exited).toBe(0);
  }, 60_000);

  it('the offline commands take the same flags: db check, deposits export and rotate-kek over TLS with the password', async () => {
    const { secure, passwordFile, wrongFile, ca, otherCa, kek, dir } = await setup();
    const url = await newDatabase(secure, 'pkm_offline');
    const reachWith = (password: string, caFile: string) => [
      '--store',
      url,
      '--store-password-file',
      password,
      '--store-ssl-mode',
      'verify-full',
      '--store-ca-file',
      caFile,
    ];
    const reach = reachWith(passwordFile, ca);
    const server = await startServerProcess([...reach, '--kek-file', kek]);
    expect((await http(server.url, 'POST', '/v1/pods/validator-0/keys', { count: 2 })).status).toBe(
      200,
    );
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const run = async (args: string[]) => {
      const child = runPkm(args);
      const exit = await child.exited;
      return {
        exit,
        out: child.stdout.join('\n'),
        text: [...child.stdout, ...child.stderr].join('\n'),
      };
    };
    const check = await run(['db', 'check', ...reach]);
    expect(check.exit).toBe(0);
    expect(JSON.parse(check.out)).toEqual({ keys: 2, pods: 1, problems: [] });
    const out = join(dir, 'deposit_data.json');
    expect((await run(['deposits', 'export', ...reach, '--out', out])).exit).toBe(0);
    const newKek = join(dir, 'kek-next');
    await writeFile(newKek, `${'8b'.repeat(32)}\n`, { mode: 0o600 });
    rememberSecret('8b'.repeat(32));
    const rotated = await run([
      'db',
      'rotate-kek',
      ...reach,
      '--kek-file',
      kek,
      '--new-kek-file',
      newKek,
    ]);
    expect(rotated.exit).toBe(0);
    // Refusals as pkm server's, with no password said.
    const wrong = await run(['db', 'check', ...reachWith(wrongFile, ca)]);
    expect(wrong.exit).toBe(ExitCode.usage);
    expect(wrong.text).toMatch(/STORE_LOGIN_REFUSED: PostgreSQL refused the login/);
    const untrusted = await run(['db', 'check', ...reachWith(passwordFile, otherCa)]);
    expect(untrusted.exit).toBe(ExitCode.usage);
    expect(untrusted.text).toMatch(/STORE_UNTRUSTED/);
    for (const { text } of [check, rotated, wrong, untrusted]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(WRONG);
    }
    expect((await sessionsByTls(secure, 'pkm_offline')).clear).toBe(0);
  }, 90_000);

  it("the URL's password and query parameters: refused by pkm server, as store-config.ts says", async () => {
    const { secure, passwordFile, kek } = await setup();
    const url = await newDatabase(secure, 'pkm_url_rules');
    const withPassword = url.replace('pkm@', `pkm:${PASSWORD}@`);
    const inUrl = await refusedStart(['--store', withPassword, '--kek-file', kek]);
    expect(inUrl.exit).toBe(ExitCode.usage);
    expect(inUrl.text).toMatch(/INVALID_CONFIG: --store must not hold the password/);
    expect(inUrl.text).not.toContain(PASSWORD);
    const query = await refusedStart([
      '--store',
      `${url}?sslmode=require`,
      '--store-password-file',
      passwordFile,
      '--kek-file',
      kek,
    ]);
    expect(query.exit).toBe(ExitCode.usage);
    expect(query.text).toMatch(/INVALID_CONFIG: --store takes no query parameters/);
    expect(await pkmTables(secure, 'pkm_url_rules')).toEqual([]);
  }, 60_000);

  it('PgStore.open (for callers that pass a URL): its password is used, an explicit one wins, the query is not read', async () => {
    const { secure } = await setup();
    const url = await newDatabase(secure, 'pkm_open_direct');
    const tls = { rejectUnauthorized: false };
    const kek = async () => Buffer.alloc(32, 9);
    const open = async (u: string, password?: string) => {
      const store = await PgStore.open(u, {
        kek,
        ssl: tls,
        ...(password === undefined ? {} : { password }),
      });
      await store.close();
    };
    await open(url.replace('pkm@', `pkm:${PASSWORD}@`));
    await open(url.replace('pkm@', `pkm:${WRONG}@`), PASSWORD);
    // pg would read sslmode and the password from the query; connection.ts does not.
    await open(`${url}?sslmode=disable&password=${WRONG}`, PASSWORD);
    await expect(open(url, WRONG)).rejects.toMatchObject({ code: 'STORE_LOGIN_REFUSED' });
  }, 60_000);
});
