// The built `pkm server --store postgres://…` (issue 15, point 1) on a real PostgreSQL: the
// state outlives a restart, and a database that stops while the server runs is answered with
// coded 503s and an unready /readyz, not a crash. Skipped only where PostgreSQL is not installed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  type AllocationBody,
  type AssignmentsBody,
  type ErrorBody,
  http,
  onCleanup,
  tempDir,
} from '../helpers.js';
import { findPostgres, type PgServer, startPostgres, usePostgres } from '../support/postgres.js';
import { startServerProcess } from './spawn.js';

const bins = await findPostgres();

/** A new database on the cluster, and its URL (the same user, trust auth: no password). */
async function newDatabase(server: PgServer, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `postgres://pkm@127.0.0.1:${server.port}/${name}`;
}

async function kekFile(): Promise<string> {
  const file = join(await tempDir(), 'kek');
  await writeFile(file, `${'3c'.repeat(32)}\n`, { mode: 0o600 });
  return file;
}

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(bins === undefined)('pkm server --store postgres://…', () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });

  it('keeps assignments across a restart on the same database', async () => {
    const url = await newDatabase(cluster(), 'pkm_restart');
    const args = ['--store', url, '--kek-file', await kekFile(), '--resync-window', '0'];
    const first = await startServerProcess(args);
    const listening = first.stdout.map((l) => JSON.parse(l)).find((l) => l.msg === 'listening');
    expect(listening?.store).toBe(url);

    const a = await http<AllocationBody>(first.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    const b = await http<AllocationBody>(first.url, 'POST', '/v1/pods/validator-1/keys', {
      count: 1,
    });
    expect([a.status, b.status]).toEqual([200, 200]);
    const released = await http(first.url, 'DELETE', '/v1/pods/validator-1/keys');
    expect(released.status).toBeLessThan(300);
    const before = await http<AssignmentsBody>(first.url, 'GET', '/v1/assignments');
    // The order within a pod is not the point: which keys it holds is.
    expect(Object.keys(before.body.pods)).toEqual(['validator-0']);
    expect([...(before.body.pods['validator-0'] ?? [])].sort()).toEqual(
      a.body.keys.map((k) => k.pubkey).sort(),
    );
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await startServerProcess(args);
    const after = await http<AssignmentsBody>(second.url, 'GET', '/v1/assignments');
    expect(after.status).toBe(200);
    expect(after.body.pods).toEqual(before.body.pods);
    expect(after.body.counts).toMatchObject({ allocated: 2, cooling: 1, total: 3, pods: 1 });
    // The same pod asking again gets its own keys back, with their secrets (the same KEK).
    const again = await http<AllocationBody>(second.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    expect(again.body.keys).toEqual(a.body.keys);
    expect((await http(second.url, 'GET', '/readyz')).status).toBe(200);
  }, 60_000);
});

describe.skipIf(bins === undefined)('pkm server --store, the database stops', () => {
  it('answers 503 STORE_UNAVAILABLE with Retry-After, /readyz 503, and keeps running', async () => {
    // A cluster of its own: this test stops it.
    const own = await startPostgres(bins ?? { initdb: '', pgCtl: '' });
    onCleanup(() => own.stop());
    const url = await newDatabase(own, 'pkm_outage');
    const server = await startServerProcess(['--store', url, '--kek-file', await kekFile()]);
    const first = await http(server.url, 'POST', '/v1/pods/validator-0/keys', { count: 1 });
    expect(first.status).toBe(200);
    expect((await http(server.url, 'GET', '/readyz')).status).toBe(200);

    await own.stop();
    const res = await http<ErrorBody>(server.url, 'POST', '/v1/pods/validator-1/keys', {
      count: 1,
    });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('STORE_UNAVAILABLE');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const read = await http<ErrorBody>(server.url, 'GET', '/v1/assignments');
    expect(read.status).toBe(503);
    expect(read.body.error.code).toBe('STORE_UNAVAILABLE');
    await until(async () => (await http(server.url, 'GET', '/readyz')).status === 503);
    expect(server.proc.exitCode).toBeNull();
    expect((await http(server.url, 'GET', '/healthz')).status).toBe(200);
  }, 90_000);
});
