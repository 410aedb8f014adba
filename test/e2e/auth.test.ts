// Tokens end to end: a spawned `pkm server --token-review` asks a fake Kubernetes API (here,
// on 127.0.0.1) about the projected token that `pkm client` reads from --token-file.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { http, tempDir } from '../helpers.js';
import { FakeKubeApi } from '../kube/fake-api.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

let api: FakeKubeApi;
beforeEach(async () => {
  api = new FakeKubeApi();
  await api.start();
});
afterEach(async () => {
  await api.stop();
});

describe('pod and admin tokens, end to end', () => {
  it('a pod gets its keys with its own token; another pod token, or none, is refused', async () => {
    const dir = await tempDir();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, api.kubeconfigYaml());
    const admin = join(dir, 'admin-tokens');
    const adminToken = 'f6'.repeat(32);
    await writeFile(admin, `${adminToken}\n`, { mode: 0o600 });
    rememberSecret(adminToken);
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--token-review',
      '--kubeconfig',
      kubeconfig,
      '--auth-token-file',
      admin,
    ]);
    const token = async (pod: string) => {
      const file = join(dir, `${pod}.token`);
      const value = api.issueToken('default', pod);
      rememberSecret(value);
      await writeFile(file, value, { mode: 0o600 });
      return file;
    };
    const client = (pod: string, extra: string[]) =>
      runPkm([
        'client',
        '--server',
        server.url,
        '--pod',
        pod,
        '--count',
        '2',
        '--out',
        join(dir, `out-${pod}`),
        '--kdf',
        'pbkdf2',
        '--timeout',
        '10s',
        ...extra,
      ]);

    const own = client('validator-0', ['--token-file', await token('validator-0')]);
    expect(await own.exited).toBe(ExitCode.ok);
    const borrowed = client('validator-1', ['--token-file', await token('validator-0')]);
    expect(await borrowed.exited).toBe(ExitCode.refused);
    expect(borrowed.stderr.join('\n')).toMatch(/FORBIDDEN: server: the token of pod validator-0/);
    const none = client('validator-1', []);
    expect(await none.exited).toBe(ExitCode.refused);
    expect(none.stderr.join('\n')).toMatch(/AUTH_REQUIRED/);

    const adminFile = join(dir, 'admin.token');
    await writeFile(adminFile, adminToken, { mode: 0o600 });
    const listed = runPkm([
      'assignments',
      '--server',
      server.url,
      '--token-file',
      adminFile,
      '--json',
    ]);
    expect(await listed.exited).toBe(ExitCode.ok);
    const pods = (JSON.parse(listed.stdout.join('\n')) as { pods: Record<string, string[]> }).pods;
    expect(Object.keys(pods)).toEqual(['validator-0']);
    const release = await http(server.url, 'DELETE', '/v1/pods/validator-0/keys');
    expect([release.status, release.body.error.code]).toEqual([401, 'AUTH_REQUIRED']);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(ExitCode.ok);
    // The request log names who asked (never with the token).
    const logged = server.stdout.map((l) => JSON.parse(l) as { caller?: string; status?: number });
    expect(logged.some((l) => l.caller === 'pod:validator-0' && l.status === 403)).toBe(true);
    expect(logged.some((l) => l.caller === 'anonymous' && l.status === 401)).toBe(true);
    expect(logged.some((l) => /^admin:[0-9a-f]{8}$/.test(l.caller ?? ''))).toBe(true);
  }, 60_000);
});
