// Encryption at rest and KEK rotation on a PostgreSQL store (issue 15, point 6: "behave the
// same"), mirroring rotation.test.ts and encryption.test.ts for LevelDB: no secret, KEK or data
// key in pg_dump's output or in the cluster's files; `pkm db rotate-kek --store` killed with
// SIGKILL at random points resumes; afterwards the old KEK is refused and every key opens with
// the new one; a rotation to a third KEK waits for the unfinished one; and no rotation runs
// while a server has the database. Skipped only where PostgreSQL is not installed.
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { kekId } from '../../src/store/encryption.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { type AllocationBody, http, onCleanup, tempDir } from '../helpers.js';
import { adminQuery, newDatabase } from '../support/pg-databases.js';
import { findPostgres, type PgServer, usePostgres } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { secretsOf, seedKeys } from '../support/seed.js';
import { type Child, runPkm, startServerProcess } from './spawn.js';

const run = promisify(execFile);
const bins = await findPostgres();

const OLD = Buffer.alloc(32, 0x3a);
const NEW = Buffer.alloc(32, 0xc5);
const THIRD = Buffer.alloc(32, 0x71);
const KEYS = 400;
const BATCH = 10;
const KILLS = 5;

/** SIGKILL as the k-th line of stderr arrives: read as it comes, not polled. */
function killAtLine(child: Child, k: number): void {
  let seen = 0;
  createInterface({ input: child.proc.stderr as Readable }).on('line', () => {
    if (++seen === k) child.proc.kill('SIGKILL');
  });
}

async function kekFiles(): Promise<{ old: string; next: string; third: string }> {
  const dir = await tempDir();
  const files = { old: join(dir, 'kek-old'), next: join(dir, 'kek-new'), third: join(dir, 'k3') };
  await writeFile(files.old, OLD.toString('hex'), { mode: 0o600 });
  await writeFile(files.next, NEW.toString('base64'), { mode: 0o600 });
  await writeFile(files.third, THIRD.toString('hex'), { mode: 0o600 });
  for (const k of [OLD, NEW, THIRD]) rememberSecret(k.toString('hex'));
  return files;
}

async function openWith(url: string, ...keks: Buffer[]): Promise<PgStore> {
  const [first, ...extra] = keks;
  if (first === undefined) throw new Error('no KEK');
  const store = await PgStore.open(url, { kek: async () => first, extraKeks: extra });
  onCleanup(() => store.close());
  return store;
}

/** pg_dump of one database as plain SQL (over TCP: the test cluster trusts loopback). */
async function dump(url: string): Promise<string> {
  // Beside initdb (a PATH entry may be a link to Debian's versioned folder): the same major.
  const pgDump = join(dirname(await realpath(bins?.initdb ?? '')), 'pg_dump');
  const { stdout } = await run(pgDump, ['--dbname', url], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 60_000,
  });
  return stdout;
}

/** Every file of the cluster (heap, indexes, WAL), after a checkpoint put the tables on disk. */
async function clusterFiles(cluster: PgServer): Promise<Buffer[]> {
  const entries = await readdir(cluster.dataDir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  return Promise.all(files.map((f) => readFile(f).catch(() => Buffer.alloc(0))));
}

/** The values (as bytes, hex either case, and base64) found in any of `haystacks`. */
function found(values: readonly Buffer[], haystacks: readonly Buffer[]): string[] {
  const hits: string[] = [];
  for (const value of values) {
    const hex = value.toString('hex');
    const forms = [value, Buffer.from(hex), Buffer.from(hex.toUpperCase())];
    forms.push(Buffer.from(value.toString('base64')));
    if (haystacks.some((h) => forms.some((f) => h.includes(f)))) hits.push(hex);
  }
  return hits;
}

describe.skipIf(bins === undefined)('PostgreSQL: encryption at rest and pkm db rotate-kek', () => {
  const cluster = usePostgres(bins ?? { initdb: '', pgCtl: '' });

  it(`keeps no secret in the database; rotates ${KEYS} keys through ${KILLS} kill -9s; the old KEK is refused after`, async () => {
    const url = await newDatabase(cluster(), 'pkm_rotation');
    const { old, next, third } = await kekFiles();
    const seeded = await openWith(url, OLD);
    const secrets = await seedKeys(seeded, KEYS);
    const oldDek = seeded.keyRing().dataKey(kekId(OLD));
    if (oldDek === undefined) throw new Error('no data key');
    await seeded.close();
    const secretBytes = [...secrets.values()].map((s) => Buffer.from(s, 'hex'));
    expect(found([...secretBytes, OLD, oldDek], [Buffer.from(await dump(url))])).toEqual([]);

    // No rotation while a server has the database (its key ring would go stale).
    const server = await startServerProcess(['--store', url, '--kek-file', old]);
    const args = ['db', 'rotate-kek', '--store', url, '--kek-file', old, '--new-kek-file', next];
    const refused = runPkm(args);
    expect(await refused.exited).toBe(ExitCode.store);
    expect(refused.stderr.join('\n')).toMatch(/STORE_LOCKED: 1 pkm server is running/);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    const rotate = () => runPkm([...args, '--batch-size', String(BATCH)]);
    const remaining: number[] = [];
    for (let round = 0; round < KILLS; round++) {
      const child = rotate();
      // As in rotation.test.ts: the k-th log line (the first says the rotation began, each
      // next one that a batch is written), or for k = 0 a moment of start-up; never the last.
      const batchesLeft = (remaining.at(-1) ?? KEYS) / BATCH;
      const spread = Math.floor((2 * batchesLeft) / (KILLS - round + 1));
      const k = randomInt(0, Math.max(2, Math.min(spread, batchesLeft - 3)));
      if (k === 0) setTimeout(() => child.proc.kill('SIGKILL'), randomInt(10, 100));
      else killAtLine(child, k);
      expect(await child.exited).toBe('SIGKILL');
      // Between runs, with both KEKs, every secret opens, whatever step the kill hit.
      const store = await openWith(url, OLD, NEW);
      expect(await secretsOf(store)).toEqual(secrets);
      let unmoved = 0;
      for await (const r of store.keyRecords()) if (r.secret?.kek !== kekId(NEW)) unmoved++;
      remaining.push(unmoved);
      expect(await store.getMeta(MetaKey.migratedKekId)).toBeUndefined();
      await store.close();
    }
    process.stdout.write(`keys under the old KEK after each kill: ${remaining.join(', ')}\n`);
    // Killed once more after its first batch, so it has begun whatever the random kills hit:
    // a rotation to a third KEK waits until this one is finished (the new KEK opens it now).
    const begun = rotate();
    killAtLine(begun, 2);
    expect(await begun.exited).toBe('SIGKILL');
    const toThird = runPkm([
      'db',
      'rotate-kek',
      '--store',
      url,
      '--kek-file',
      next,
      '--new-kek-file',
      third,
    ]);
    expect(await toThird.exited).toBe(ExitCode.conflict);
    expect(toThird.stderr.join('\n')).toMatch(
      /ROTATION_IN_PROGRESS: a rotation to KEK [0-9a-f]{16}/,
    );

    const last = rotate();
    expect(await last.exited).toBe(ExitCode.ok);
    expect(JSON.parse(last.stdout.at(-1) ?? '{}')).toMatchObject({ target: kekId(NEW) });
    expect(new Set(remaining).size).toBeGreaterThan(1);

    // The old KEK opens nothing now: refused by the server and by the commands.
    const oldServer = runPkm([
      'server',
      '--listen',
      '127.0.0.1:0',
      '--store',
      url,
      '--kek-file',
      old,
    ]);
    expect(await oldServer.exited).toBe(ExitCode.store);
    expect(oldServer.stderr.join('\n')).toMatch(/WRONG_KEK/);
    await expect(openWith(url, OLD)).rejects.toMatchObject({ code: 'WRONG_KEK' });
    const store = await openWith(url, NEW);
    expect(await store.getMeta(MetaKey.migratedKekId)).toBe(kekId(NEW));
    expect(await secretsOf(store)).toEqual(secrets);
    for await (const r of store.keyRecords()) expect(r.secret?.kek).toBe(kekId(NEW));
    expect((await checkStore(store)).problems).toEqual([]);
    const newDek = store.keyRing().dataKey(kekId(NEW));
    if (newDek === undefined) throw new Error('no data key');
    await store.close();
    const check = runPkm(['db', 'check', '--store', url]);
    expect(await check.exited).toBe(0);

    // After it all, no secret, KEK or data key in plaintext: not in the dump, not on disk.
    await adminQuery(cluster(), 'postgres', 'CHECKPOINT');
    const values = [...secretBytes, OLD, NEW, oldDek, newDek];
    const dumped = [Buffer.from(await dump(url))];
    const onDisk = await clusterFiles(cluster());
    expect(found(values, dumped)).toEqual([]);
    expect(found(values, onDisk)).toEqual([]);
    // The scan finds what is there: the pubkeys, which the records keep in the clear.
    const pubkeys = [...secrets.keys()].slice(0, 3).map((pk) => Buffer.from(pk.slice(2), 'hex'));
    expect(found(pubkeys, dumped)).toHaveLength(3);
    expect(found(pubkeys, onDisk)).toHaveLength(3);
  }, 300_000);

  it('POST /v1/admin/kek-rotation: refused while another server shares the database, then rotates the last one', async () => {
    const url = await newDatabase(cluster(), 'pkm_rotation_admin');
    const { old, next } = await kekFiles();
    const tokenFile = join(await tempDir(), 'admin-tokens');
    const admin = 'e7'.repeat(32);
    await writeFile(tokenFile, `${admin}\n`, { mode: 0o600 });
    rememberSecret(admin);
    const auth = { authorization: `Bearer ${admin}` };
    const start = (kek: string) =>
      startServerProcess(['--store', url, '--kek-file', kek, '--auth-token-file', tokenFile]);
    const first = await start(old);
    const second = await start(old);
    const mine = await http<AllocationBody>(
      first.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 3 },
      auth,
    );
    expect(mine.status).toBe(200);
    const rotate = (url: string) =>
      http<{ error?: { code: string; message: string }; target?: string }>(
        url,
        'POST',
        '/v1/admin/kek-rotation',
        { newKekFile: next },
        auth,
      );
    const refused = await rotate(first.url);
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('STORE_LOCKED');
    expect(refused.body.error?.message).toMatch(/^1 other pkm server runs on this database/);
    const untouched = await openWith(url, OLD);
    expect(await untouched.getMeta(MetaKey.targetKekId)).toBeUndefined();
    await untouched.close();

    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const rotated = await rotate(first.url);
    expect(rotated.status).toBe(200);
    expect(rotated.body.target).toBe(kekId(NEW));
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    // Restarted with the new KEK only, the pod's keys come back with the same secrets.
    const again = await start(next);
    const back = await http<AllocationBody>(
      again.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 3 },
      auth,
    );
    expect(back.body.keys).toEqual(mine.body.keys);
    for (const k of mine.body.keys) rememberSecret(k.secretKey);
    again.proc.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  }, 120_000);

  it('an unfinished rotation: a server with the old KEK alone is refused, with the new one finishes it', async () => {
    const url = await newDatabase(cluster(), 'pkm_rotation_unfinished');
    const { old, next } = await kekFiles();
    const seeded = await openWith(url, OLD);
    const secrets = await seedKeys(seeded, 200);
    await seeded.close();
    const child = runPkm([
      'db',
      'rotate-kek',
      '--store',
      url,
      '--kek-file',
      old,
      '--new-kek-file',
      next,
      '--batch-size',
      '10',
    ]);
    killAtLine(child, 3);
    expect(await child.exited).toBe('SIGKILL');
    const oldOnly = await startServerProcess(['--store', url, '--kek-file', old]).catch(
      (err: Error) => err.message,
    );
    expect(oldOnly).toMatch(/ROTATION_UNFINISHED/);
    const server = await startServerProcess(['--store', url, '--kek-file', next]);
    expect(server.stdout.some((l) => l.includes('finished an interrupted KEK rotation'))).toBe(
      true,
    );
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const store = await openWith(url, NEW);
    expect(await secretsOf(store)).toEqual(secrets);
  }, 120_000);
});
