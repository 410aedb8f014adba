// `pkm server --store postgres://…` and its flags (issue 15, point 1): every refusal is
// INVALID_CONFIG with an example, comes before anything connects, and never repeats a password.
// The refusals that need a file read run startServer against a real PostgreSQL and find no
// table made in it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { RawFlags } from '../../src/config.js';
import { PkmError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/root.js';
import { describeStore } from '../../src/server/store-config.js';
import { tempDir } from '../helpers.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const URL_OK = 'postgres://pkm@127.0.0.1:5432/pkm';
const KEK = '/etc/pkm/kek';

function refusal(raw: RawFlags): PkmError {
  try {
    parseServerConfig(raw);
  } catch (err) {
    if (err instanceof PkmError) return err;
    throw err;
  }
  throw new Error(`parseServerConfig accepted ${JSON.stringify(raw)}`);
}

describe('--store refusals at parse time', () => {
  const cases: Array<[string, RawFlags, RegExp]> = [
    [
      'another scheme',
      { store: 'mysql://pkm@db/pkm', kekFile: KEK },
      /^--store takes a postgres:\/\/ or postgresql:\/\/ URL .*, e\.g\. --store postgres:\/\//,
    ],
    [
      'no URL at all',
      { store: 'data', kekFile: KEK },
      /^--store takes a postgres:\/\/ URL.*e\.g\./,
    ],
    [
      'query parameters (pg would read sslmode or a password from them)',
      { store: `${URL_OK}?sslmode=disable`, kekFile: KEK },
      /^--store takes no query parameters .*e\.g\. --store postgres:\/\//,
    ],
    [
      'no database',
      { store: 'postgres://pkm@127.0.0.1:5432', kekFile: KEK },
      /^--store names a host and a database, e\.g\./,
    ],
    [
      'no --kek-file',
      { store: URL_OK },
      /^--store postgres:\/\/… needs --kek-file .*e\.g\. --kek-file \/etc\/pkm\/kek$/,
    ],
    [
      '--store-password-file without --store',
      { storePasswordFile: '/etc/pkm/db-password' },
      /^--store-password-file needs a PostgreSQL store, e\.g\. --store postgres:\/\//,
    ],
    [
      '--store-ssl-mode without --store',
      { storeSslMode: 'require' },
      /^--store-ssl-mode needs a PostgreSQL store, e\.g\./,
    ],
    [
      '--store-ca-file without --store',
      { storeCaFile: '/etc/pkm/ca.crt' },
      /^--store-ca-file needs a PostgreSQL store, e\.g\./,
    ],
    [
      'an unknown --store-ssl-mode',
      { store: URL_OK, kekFile: KEK, storeSslMode: 'prefer' },
      /^--store-ssl-mode is disable, require or verify-full, e\.g\. --store-ssl-mode verify-full$/,
    ],
    [
      'verify-full without its CA',
      { store: URL_OK, kekFile: KEK, storeSslMode: 'verify-full' },
      /^--store-ca-file is needed by --store-ssl-mode verify-full, e\.g\. --store-ca-file /,
    ],
    [
      'a CA with require (it would be ignored)',
      { store: URL_OK, kekFile: KEK, storeSslMode: 'require', storeCaFile: '/ca.crt' },
      /^--store-ca-file goes with --store-ssl-mode verify-full .*e\.g\. --store-ssl-mode verify-full/,
    ],
    [
      'a CA with no mode',
      { store: URL_OK, kekFile: KEK, storeCaFile: '/ca.crt' },
      /^--store-ca-file goes with --store-ssl-mode verify-full/,
    ],
    [
      'a database beyond loopback with no TLS mode chosen',
      { store: 'postgres://pkm@db.example:5432/pkm', kekFile: KEK },
      /^--store-ssl-mode is needed for a database beyond loopback \(db\.example\), e\.g\. --store-ssl-mode verify-full/,
    ],
  ];
  it.each(cases)('refuses %s', (_name, raw, message) => {
    const err = refusal(raw);
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(message);
  });

  it('refuses a password in the URL, pointing at the file, without repeating it', () => {
    const err = refusal({ store: 'postgres://pkm:hunter2@127.0.0.1/pkm', kekFile: KEK });
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toMatch(/^--store must not hold the password.*--store-password-file /);
    expect(err.message).not.toContain('hunter2');
    // A URL too broken to parse is not repeated either.
    const broken = refusal({ store: 'postgres://pkm:hunter2@[bad/pkm', kekFile: KEK });
    expect(broken.message).not.toContain('hunter2');
  });
});

describe('--store accepted', () => {
  it('defaults to LevelDB in --data-dir', () => {
    expect(parseServerConfig({ dataDir: '/var/pkm' }).store).toEqual({
      kind: 'leveldb',
      dataDir: '/var/pkm',
    });
  });

  it('takes postgres:// and postgresql://, with no TLS on loopback by default', () => {
    const config = parseServerConfig({ store: URL_OK, kekFile: KEK });
    expect(config.store).toMatchObject({ kind: 'postgres', ssl: { mode: 'disable' } });
    expect(describeStore(config.store)).toBe(URL_OK);
    const other = parseServerConfig({ store: 'postgresql://pkm@localhost/pkm', kekFile: KEK });
    expect(other.store.kind).toBe('postgres');
  });

  it('takes require, and verify-full with its CA, for a remote database', () => {
    const remote = 'postgres://pkm@db.example:5432/pkm';
    expect(
      parseServerConfig({ store: remote, kekFile: KEK, storeSslMode: 'require' }).store,
    ).toMatchObject({ ssl: { mode: 'require' } });
    expect(
      parseServerConfig({
        store: remote,
        kekFile: KEK,
        storeSslMode: 'verify-full',
        storeCaFile: '/ca.crt',
        storePasswordFile: '/pw',
      }).store,
    ).toMatchObject({ passwordFile: '/pw', ssl: { mode: 'verify-full', caFile: '/ca.crt' } });
  });
});

const bins = await findPostgres();

describe.skipIf(bins === undefined)('--store files: refused before anything connects', () => {
  const server = usePostgres(bins ?? { initdb: '', pgCtl: '' });
  const log = createLogger('silent');

  async function tables(): Promise<string[]> {
    const client = new pg.Client({ connectionString: server().url });
    await client.connect();
    try {
      const res = await client.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'pkm_%'",
      );
      return res.rows.map((r) => r.name);
    } finally {
      await client.end();
    }
  }

  it('a missing or empty password file, a missing CA, a bad KEK: INVALID_CONFIG, no table', async () => {
    const dir = await tempDir();
    const kek = join(dir, 'kek');
    const empty = join(dir, 'empty');
    const ca = join(dir, 'ca.crt');
    await writeFile(kek, `${'07'.repeat(32)}\n`);
    await writeFile(empty, '\n');
    const base = { store: server().url, kekFile: kek, listen: '127.0.0.1:0' };
    const bad: RawFlags[] = [
      { ...base, storePasswordFile: join(dir, 'missing') },
      { ...base, storePasswordFile: empty },
      { ...base, storeSslMode: 'verify-full', storeCaFile: ca },
      { ...base, kekFile: join(dir, 'missing-kek') },
    ];
    await writeFile(join(dir, 'not-a-kek'), 'short\n');
    bad.push({ ...base, kekFile: join(dir, 'not-a-kek') });
    for (const raw of bad) {
      const config = parseServerConfig(raw);
      await expect(startServer(config, log)).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    }
    expect(await tables()).toEqual([]);
  });
});
