// The operator's commands: pkm status against a running server, and pkm db backup / restore
// on a stopped one.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { kekLoader } from '../../src/store/encryption.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { beat, prove } from '../support/heartbeats.js';
import { runPkm, startServerProcess } from './spawn.js';

async function rawEntries(dir: string): Promise<Array<[string, string]>> {
  const store = await Store.open(dir, { kek: kekLoader(dir, join(dir, 'kek')) });
  try {
    return await store.rawEntries();
  } finally {
    await store.close();
  }
}

describe('pkm status', () => {
  it('shows counts, pool health, conflicts and deposits', async () => {
    const dir = await tempDir();
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--max-total-keys',
      '3',
    ]);
    const a = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 2,
    });
    await http(server.url, 'POST', '/v1/pods/validator-1/keys', { count: 1 });
    // validator-1 runs a copy of validator-0's key and proves it: two pods run it, a conflict.
    const [copy] = a.body.keys;
    if (!copy) throw new Error('setup');
    const stolen = copy.pubkey;
    const { bootToken } = (await beat(server.url, 'validator-1', [])).body;
    const proofs = prove(bootToken, 'validator-1', [
      { pubkey: stolen, secretKey: Buffer.from(copy.secretKey.slice(2), 'hex') },
    ]);
    expect((await beat(server.url, 'validator-1', [stolen], proofs)).body.conflicts).toEqual([
      stolen,
    ]);

    const text = runPkm(['status', '--server', server.url]);
    expect(await text.exited).toBe(ExitCode.ok);
    const out = text.stdout.join('\n');
    expect(out).toMatch(/^ready {6}yes$/m);
    expect(out).toMatch(/^keys .*allocated 2.*conflict 1.*\(total 3\)$/m);
    expect(out).toMatch(/^pods {7}2$/m);
    expect(out).toMatch(/^pool {7}EXHAUSTED: no free key and --max-total-keys reached/m);
    expect(out).toMatch(/^conflicts {2}1 recent/m);
    expect(out).toContain(`validator-1 ${stolen.slice(0, 10)}…${stolen.slice(-6)}`);

    const json = runPkm(['status', '--server', server.url, '--json']);
    expect(await json.exited).toBe(ExitCode.ok);
    const status = JSON.parse(json.stdout.join('\n')) as {
      pool: { healthy: boolean };
      counts: { pods: number };
    };
    expect(status.pool.healthy).toBe(false);
    expect(status.counts.pods).toBe(2);
  });
});

describe('pkm db backup and restore', () => {
  it('copies a stopped store, restores it into an empty dir, and the pods get the same keys', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const server = await startServerProcess(['--data-dir', data]);
    const before = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 3,
    });
    const file = join(dir, 'backup.jsonl');
    const locked = runPkm(['db', 'backup', '--data-dir', data, '--out', file]);
    expect(await locked.exited).toBe(ExitCode.store); // the server holds the store's lock
    expect(locked.stderr.join('\n')).toMatch(/STORE_LOCKED/);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(ExitCode.ok);

    const backup = runPkm(['db', 'backup', '--data-dir', data, '--out', file]);
    expect(await backup.exited).toBe(ExitCode.ok);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const original = await rawEntries(data);
    expect(JSON.parse(backup.stdout.join('')).entries).toBe(original.length);

    const restored = join(dir, 'restored');
    const restore = runPkm(['db', 'restore', '--data-dir', restored, '--from', file]);
    expect(await restore.exited).toBe(ExitCode.ok);
    // It says what it fenced, that the next start holds moves, and what the backup cannot know.
    const said = restore.stderr.join('\n');
    expect(said).toMatch(/0 free or cooling keys are fenced/);
    expect(said).toMatch(/holds every move and every derivation for a full --reuse-delay/);
    expect(said).toMatch(/what this backup cannot know:[\s\S]*retired after the backup/);
    // The KEK file lives outside the store: a restore needs the same KEK.
    await writeFile(join(restored, 'kek'), await readFile(join(data, 'kek')), { mode: 0o600 });
    // The same entries, and the mark that makes the next start hold (backup.ts).
    const marked = await rawEntries(restored);
    expect(marked.filter(([k]) => k !== '!meta!restored-at')).toEqual(original);
    expect(marked.some(([k]) => k === '!meta!restored-at')).toBe(true);

    const again = await startServerProcess(['--data-dir', restored]);
    const after = await http<{ pubkeys: string[] }>(again.url, 'GET', '/v1/pods/validator-0/keys');
    expect(after.body.pubkeys).toEqual(before.body.keys.map((k) => k.pubkey));
    again.proc.kill('SIGTERM');
    expect(await again.exited).toBe(ExitCode.ok);
  });

  it('refuses a non-empty target and a damaged backup, changing nothing', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const server = await startServerProcess(['--data-dir', data]);
    await http(server.url, 'POST', '/v1/pods/validator-0/keys', { count: 1 });
    server.proc.kill('SIGTERM');
    await server.exited;
    const file = join(dir, 'backup.jsonl');
    expect(await runPkm(['db', 'backup', '--data-dir', data, '--out', file]).exited).toBe(
      ExitCode.ok,
    );
    const original = await rawEntries(data);

    const onto = runPkm(['db', 'restore', '--data-dir', data, '--from', file]);
    expect(await onto.exited).toBe(ExitCode.conflict);
    expect(onto.stderr.join('\n')).toMatch(/RESTORE_TARGET_NOT_EMPTY/);
    expect(await rawEntries(data)).toEqual(original);

    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    const damaged = join(dir, 'damaged.jsonl');
    await writeFile(damaged, `${lines.slice(0, -1).join('\n')}\n`);
    const target = join(dir, 'new');
    const refused = runPkm(['db', 'restore', '--data-dir', target, '--from', damaged]);
    expect(await refused.exited).toBe(ExitCode.usage);
    expect(refused.stderr.join('\n')).toMatch(/INVALID_BACKUP: .* entries, the header says/);
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });
});
