// KEK rotation as operators run it: `pkm db rotate-kek` on a stopped server's store (killed with
// SIGKILL at random points and resumed), and the admin route on a running server.
import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { kekId, kekLoader } from '../../src/store/encryption.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { secretsOf, seedKeys } from '../support/seed.js';
import { type Child, runPkm, startServerProcess } from './spawn.js';

const OLD = Buffer.alloc(32, 0x5a);
const NEW = Buffer.alloc(32, 0xa5);
const KEYS = 1000;
const BATCH = 10;
const KILLS = 10;

/** SIGKILL as the k-th line of stderr arrives: read as it comes, not polled. */
function killAtLine(child: Child, k: number): void {
  let seen = 0;
  createInterface({ input: child.proc.stderr as Readable }).on('line', () => {
    if (++seen === k) child.proc.kill('SIGKILL');
  });
}

async function kekFiles(dir: string): Promise<{ old: string; next: string }> {
  const old = join(dir, 'kek-old');
  const next = join(dir, 'kek-new');
  await writeFile(old, OLD.toString('hex'), { mode: 0o600 });
  await writeFile(next, NEW.toString('base64'), { mode: 0o600 });
  rememberSecret(OLD.toString('hex'));
  rememberSecret(NEW.toString('hex'));
  return { old, next };
}

describe('pkm db rotate-kek', () => {
  it(`resumes after kill -9 at ${KILLS} random points while rotating ${KEYS} keys`, async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const { old, next } = await kekFiles(dir);
    const seeded = await Store.open(data, { kek: kekLoader(data, old) });
    const secrets = await seedKeys(seeded, KEYS);
    await seeded.close();
    const args = ['db', 'rotate-kek', '--data-dir', data, '--kek-file', old];
    const rotate = () => runPkm([...args, '--new-kek-file', next, '--batch-size', String(BATCH)]);

    // Keys still under the old KEK after each kill: each kill lands inside the rotation.
    const remaining: number[] = [];
    for (let round = 0; round < KILLS; round++) {
      const child = rotate();
      // A random point: as the k-th log line arrives (read as it comes, not polled; the first
      // says the rotation has begun, each next one that a batch is written), or for k = 0 a
      // random moment of start-up, before the rotation begins.
      // Spread over the whole rotation: on average, a kill leaves a share of what is left for
      // each of the rounds to come.
      // Never at the last batches, so that every kill lands before the rotation ends.
      const batchesLeft = (remaining.at(-1) ?? KEYS) / BATCH;
      const spread = Math.floor((2 * batchesLeft) / (KILLS - round + 1));
      const k = randomInt(0, Math.max(2, Math.min(spread, batchesLeft - 3)));
      if (k === 0) setTimeout(() => child.proc.kill('SIGKILL'), randomInt(10, 100));
      else killAtLine(child, k);
      expect(await child.exited).toBe('SIGKILL');
      // Between runs, with both KEKs, every secret opens, whatever the step the kill hit.
      const store = await Store.open(data, { kek: kekLoader(data, old), extraKeks: [NEW] });
      expect(await secretsOf(store)).toEqual(secrets);
      let unmoved = 0;
      for await (const r of store.keyRecords()) if (r.secret?.kek !== kekId(NEW)) unmoved++;
      remaining.push(unmoved);
      expect(await store.getMeta(MetaKey.migratedKekId)).toBeUndefined();
      await store.close();
    }
    process.stdout.write(`keys under the old KEK after each kill: ${remaining.join(', ')}\n`);
    const last = rotate();
    expect(await last.exited).toBe(ExitCode.ok);
    const result = JSON.parse(last.stdout.at(-1) ?? '{}') as { target?: string };
    expect(result.target).toBe(kekId(NEW));

    const store = await Store.open(data, { kek: async () => NEW });
    expect(await store.getMeta(MetaKey.migratedKekId)).toBe(kekId(NEW));
    expect(await store.getMeta(MetaKey.targetKekId)).toBe(kekId(NEW));
    expect(await secretsOf(store)).toEqual(secrets);
    for await (const r of store.keyRecords()) expect(r.secret?.kek).toBe(kekId(NEW));
    expect((await checkStore(store)).problems).toEqual([]);
    await store.close();
    // The kills landed at different steps: the rotation moved on between them.
    expect(new Set(remaining).size).toBeGreaterThan(2);
    expect(remaining.at(-1)).toBeGreaterThan(0);
  }, 240_000);

  it('refuses a second rotation to another KEK while one is unfinished', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const { old, next } = await kekFiles(dir);
    const seeded = await Store.open(data, { kek: kekLoader(data, old) });
    await seedKeys(seeded, 400);
    await seeded.close();
    const child = runPkm([
      'db',
      'rotate-kek',
      '--data-dir',
      data,
      '--kek-file',
      old,
      '--new-kek-file',
      next,
      '--batch-size',
      '10',
    ]);
    killAtLine(child, 3);
    expect(await child.exited).toBe('SIGKILL');
    const third = join(dir, 'kek-third');
    await writeFile(third, 'c3'.repeat(32), { mode: 0o600 });
    const refused = runPkm([
      'db',
      'rotate-kek',
      '--data-dir',
      data,
      '--kek-file',
      next,
      '--new-kek-file',
      third,
    ]);
    expect(await refused.exited).toBe(ExitCode.conflict);
    expect(refused.stderr.join('\n')).toMatch(
      /ROTATION_IN_PROGRESS: a rotation to KEK [0-9a-f]{16} is unfinished/,
    );
    const oldOnly = await startServerProcess(['--data-dir', data, '--kek-file', old]).catch(
      (err: Error) => err.message,
    );
    expect(oldOnly).toMatch(/ROTATION_UNFINISHED/);
    // Started with the new KEK, the server finishes the rotation before it serves.
    const server = await startServerProcess(['--data-dir', data, '--kek-file', next]);
    expect(server.stdout.some((l) => l.includes('finished an interrupted KEK rotation'))).toBe(
      true,
    );
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });
});

describe('POST /v1/admin/kek-rotation', () => {
  it('rotates a running server while pods allocate; it restarts with the new KEK only', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const { old, next } = await kekFiles(dir);
    const tokenFile = join(dir, 'admin-tokens');
    const admin = 'd4'.repeat(32);
    await writeFile(tokenFile, `${admin}\n`, { mode: 0o600 });
    rememberSecret(admin);
    const auth = { authorization: `Bearer ${admin}` };
    const start = (kek: string) =>
      startServerProcess(['--data-dir', data, '--kek-file', kek, '--auth-token-file', tokenFile]);
    const server = await start(old);
    const pods = Array.from({ length: 20 }, (_, i) => `validator-${i}`);
    const allocate = (pod: string) =>
      http<AllocationBody>(server.url, 'POST', `/v1/pods/${pod}/keys`, { count: 5 }, auth);
    for (const pod of pods.slice(0, 10)) expect((await allocate(pod)).status).toBe(200);
    const [rotation, ...during] = await Promise.all([
      http<{ target: string; migrated: number }>(
        server.url,
        'POST',
        '/v1/admin/kek-rotation',
        { newKekFile: next },
        auth,
      ),
      ...pods.slice(10).map(allocate),
    ]);
    expect(rotation?.status).toBe(200);
    expect(rotation?.body.target).toBe(kekId(NEW));
    for (const res of during) expect(res.status).toBe(200);
    const handed = new Map<string, string>();
    for (const pod of pods) {
      const again = await allocate(pod); // the same keys again, opened after the rotation
      for (const k of again.body.keys) handed.set(k.pubkey, k.secretKey.slice(2));
    }
    expect(handed.size).toBe(100);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    const refused = runPkm([
      'server',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      data,
      '--kek-file',
      old,
    ]);
    expect(await refused.exited).toBe(ExitCode.store);
    expect(refused.stderr.join('\n')).toMatch(/WRONG_KEK/);
    const store = await Store.open(data, { kek: async () => NEW });
    const opened = await secretsOf(store);
    for (const [pk, secret] of handed) expect(opened.get(pk)).toBe(secret);
    await store.close();
  });
});
