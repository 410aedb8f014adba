// The built `pkm db copy` (issue 15, point 6): a LevelDB server's store copied into PostgreSQL,
// and `pkm server --store postgres://…` on the copy serves the same assignments, its pods'
// own keys back. Skipped only where PostgreSQL is not installed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { type AllocationBody, type AssignmentsBody, http, tempDir } from '../helpers.js';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { runPkm, startServerProcess } from './spawn.js';

const bins = await findPostgres();

describe.skipIf(bins === undefined)('pkm db copy (built CLI)', () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });

  it('LevelDB -> PostgreSQL: a server on the copy serves the same assignments', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const kek = join(dir, 'kek');
    await writeFile(kek, `${'5e'.repeat(32)}\n`, { mode: 0o600 });
    const admin = new pg.Client({ connectionString: cluster().url });
    await admin.connect();
    await admin.query('CREATE DATABASE pkm_copied');
    await admin.end();
    const url = `postgres://pkm@127.0.0.1:${cluster().port}/pkm_copied`;

    const level = await startServerProcess([
      '--data-dir',
      dataDir,
      '--kek-file',
      kek,
      '--resync-window',
      '0',
    ]);
    const a = await http<AllocationBody>(level.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    const b = await http<AllocationBody>(level.url, 'POST', '/v1/pods/validator-1/keys', {
      count: 1,
    });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await http(level.url, 'DELETE', '/v1/pods/validator-1/keys')).status).toBeLessThan(300);
    const before = await http<AssignmentsBody>(level.url, 'GET', '/v1/assignments');
    level.proc.kill('SIGTERM');
    expect(await level.exited).toBe(0);

    const copy = runPkm(['db', 'copy', '--from', dataDir, '--to', url, '--kek-file', kek]);
    expect(await copy.exited).toBe(0);
    expect(JSON.parse(copy.stdout.at(-1) ?? '')).toMatchObject({ keys: 3, pods: 2, problems: [] });
    // Run again, the copy is refused: the database is not empty.
    const again = runPkm(['db', 'copy', '--from', dataDir, '--to', url, '--kek-file', kek]);
    expect(await again.exited).not.toBe(0);
    expect(again.stderr.join('\n')).toContain('RESTORE_TARGET_NOT_EMPTY');

    const onPg = await startServerProcess([
      '--store',
      url,
      '--kek-file',
      kek,
      '--resync-window',
      '0',
    ]);
    const after = await http<AssignmentsBody>(onPg.url, 'GET', '/v1/assignments');
    expect(after.status).toBe(200);
    expect(after.body).toEqual(before.body);
    // The pod asking again gets its own keys back, their secrets opened with the same KEK.
    const mine = await http<AllocationBody>(onPg.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    expect(mine.status).toBe(200);
    expect(mine.body.keys.map((k) => k.pubkey).sort()).toEqual(
      a.body.keys.map((k) => k.pubkey).sort(),
    );
    expect(mine.body.keys.map((k) => k.secretKey).sort()).toEqual(
      a.body.keys.map((k) => k.secretKey).sort(),
    );
    onPg.proc.kill('SIGTERM');
    expect(await onPg.exited).toBe(0);
  });
});
