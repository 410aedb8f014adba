import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { kekLoader } from '../../src/store/encryption.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Every entry of the store, opened with its KEK: "no record changed" means this is equal. */
async function records(dir: string, kekFile: string): Promise<Array<[string, string]>> {
  const store = await Store.open(dir, { kek: kekLoader(dir, kekFile) });
  try {
    return await store.rawEntries();
  } finally {
    await store.close();
  }
}

describe('encryption at rest', () => {
  it('keeps no secret key in the data dir, as bytes or as hex', async () => {
    const data = join(await tempDir(), 'data');
    const server = await startServerProcess(['--data-dir', data]);
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await http<AllocationBody>(server.url, 'POST', `/v1/pods/v-${i}/keys`, {
        count: 10,
      });
      secrets.push(...res.body.keys.map((k) => k.secretKey.slice(2)));
    }
    expect(secrets).toHaveLength(50);
    // Nor does any secret show on the pages and answers that are not about one pod's keys.
    for (const path of [
      '/metrics',
      '/assignments',
      '/v1/assignments',
      '/v1/events',
      '/v1/deposits',
    ]) {
      const shown = await http<unknown>(server.url, 'GET', path);
      expect(shown.status).toBe(200);
      const text = JSON.stringify(shown.body).toLowerCase();
      expect([path, secrets.filter((s) => text.includes(s))]).toEqual([path, []]);
    }
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.stdout.some((l) => l.includes('made a new KEK next to the data'))).toBe(true);

    const contents = await Promise.all((await files(data)).map((f) => readFile(f)));
    let found = 0;
    for (const secret of secrets) {
      const raw = Buffer.from(secret, 'hex');
      for (const c of contents) {
        if (
          c.includes(raw) ||
          c.includes(Buffer.from(secret)) ||
          c.includes(Buffer.from(secret.toUpperCase()))
        )
          found++;
      }
    }
    expect(found).toBe(0);
    const logs = [...server.stdout, ...server.stderr].join('\n');
    expect(secrets.filter((s) => logs.includes(s))).toEqual([]);
  }, 60_000);

  it('refuses to start with another KEK, or without its own, and changes nothing', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const kekA = join(dir, 'a.kek');
    const kekB = join(dir, 'b.kek');
    await writeFile(kekA, `${'11'.repeat(32)}\n`, { mode: 0o600 });
    await writeFile(kekB, Buffer.alloc(32, 0x22).toString('base64'), { mode: 0o600 });
    rememberSecret('11'.repeat(32));
    rememberSecret('22'.repeat(32));
    const first = await startServerProcess(['--data-dir', data, '--kek-file', kekA]);
    await http(first.url, 'POST', '/v1/pods/v-0/keys', { count: 2 });
    first.proc.kill('SIGTERM');
    await first.exited;
    const before = await records(data, kekA);

    const wrong = runPkm([
      'server',
      '--data-dir',
      data,
      '--listen',
      '127.0.0.1:0',
      '--kek-file',
      kekB,
    ]);
    expect(await wrong.exited).toBe(ExitCode.store);
    expect(wrong.stderr.join('')).toMatch(
      /^pkm: WRONG_KEK: this store's data key was sealed with KEK [0-9a-f]{16}, not with the KEK given/,
    );
    const none = runPkm(['server', '--data-dir', data, '--listen', '127.0.0.1:0']);
    expect(await none.exited).toBe(ExitCode.store);
    expect(none.stderr.join('')).toMatch(/this store is encrypted, and .*kek is missing/);
    expect(await records(data, kekA)).toEqual(before);
    expect((await files(data)).some((f) => f.endsWith('/kek'))).toBe(false); // no KEK made for it

    const right = await startServerProcess(['--data-dir', data, '--kek-file', kekA]);
    expect((await http(right.url, 'GET', '/v1/pods/v-0/keys')).body).toMatchObject({
      pubkeys: expect.any(Array),
    });
    const again = await http<AllocationBody>(right.url, 'POST', '/v1/pods/v-0/keys', { count: 2 });
    expect(again.status).toBe(200); // the same keys, decrypted with the right KEK
    await rm(kekB);
  }, 60_000);
});
