import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { tempDir, until } from '../helpers.js';
import { makeCert, makeClientCert } from '../support/certs.js';
import { review as reviewOf } from '../support/review.js';
import { runPkm, startServerProcess } from './spawn.js';

const run = promisify(execFile);

/** POST over HTTPS trusting `ca`, with an optional client certificate. */
function post(
  url: string,
  ca: Buffer,
  body: unknown,
  client?: { cert: Buffer; key: Buffer },
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', ...headers },
        ...client,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** GET over HTTPS trusting `ca`; the status and the fingerprint of the certificate served. */
function get(url: string, ca: Buffer): Promise<{ status: number; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('pkm server over TLS', () => {
  it('serves HTTPS, and swaps in a rotated certificate on SIGHUP without a restart', async () => {
    const dir = await tempDir();
    const first = await makeCert(dir, 'first');
    const second = await makeCert(dir, 'second');
    const live = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    await run('cp', [first.cert, live.cert]);
    await run('cp', [first.key, live.key]);
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      live.cert,
      '--tls-key',
      live.key,
    ]);
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const fp = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;
    const before = await get(`${server.url}/healthz`, await readFile(first.cert));
    expect(before).toEqual({ status: 200, fingerprint: await fp(first.cert) });

    await run('cp', [second.cert, live.cert]);
    await run('cp', [second.key, live.key]);
    server.proc.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (
      !server.stdout.some((l) => l.includes('TLS certificate reloaded')) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = await get(`${server.url}/healthz`, await readFile(second.cert));
    expect(after).toEqual({ status: 200, fingerprint: await fp(second.cert) });
    await expect(get(`${server.url}/healthz`, await readFile(first.cert))).rejects.toThrow(
      /self[- ]signed|unable to verify|certificate/i,
    );
  }, 30_000);

  it('swaps in a certificate when its files change (a Secret update), with no signal', async () => {
    const dir = await tempDir();
    const first = await makeCert(dir, 'first');
    const second = await makeCert(dir, 'second');
    // The layout kubelet gives a mounted Secret: files link into ..data, itself a link to a
    // timestamped folder; an update writes a new folder and renames a new ..data link over.
    const mount = join(dir, 'mount');
    await run('mkdir', ['-p', join(mount, 'v1'), join(mount, 'v2')]);
    await run('cp', [first.cert, join(mount, 'v1', 'tls.crt')]);
    await run('cp', [first.key, join(mount, 'v1', 'tls.key')]);
    await run('cp', [second.cert, join(mount, 'v2', 'tls.crt')]);
    await run('cp', [second.key, join(mount, 'v2', 'tls.key')]);
    await run('ln', ['-s', 'v1', join(mount, '..data')]);
    await run('ln', ['-s', '..data/tls.crt', join(mount, 'tls.crt')]);
    await run('ln', ['-s', '..data/tls.key', join(mount, 'tls.key')]);
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      join(mount, 'tls.crt'),
      '--tls-key',
      join(mount, 'tls.key'),
    ]);
    const firstCa = await readFile(first.cert);
    expect((await get(`${server.url}/healthz`, firstCa)).status).toBe(200);
    await run('ln', ['-s', 'v2', join(mount, '..data_tmp')]);
    await run('mv', ['-T', join(mount, '..data_tmp'), join(mount, '..data')]);
    await until(() => server.stdout.some((l) => l.includes('TLS certificate reloaded')), 10_000);
    const after = await get(`${server.url}/healthz`, await readFile(second.cert));
    expect(after.status).toBe(200);
    await expect(get(`${server.url}/healthz`, firstCa)).rejects.toThrow(/certificate/i);
  }, 30_000);

  it('pkm client succeeds with --ca-file, and without it fails at once with a coded error', async () => {
    const dir = await tempDir();
    const tls = await makeCert(dir, 'server');
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
    ]);
    const client = (extra: string[]) =>
      runPkm([
        'client',
        '--server',
        server.url,
        '--pod',
        'validator-0',
        '--count',
        '2',
        '--out',
        join(dir, 'out'),
        '--kdf',
        'pbkdf2',
        '--timeout',
        '20s',
        ...extra,
      ]);
    const untrusted = client([]);
    expect(await untrusted.exited).toBe(ExitCode.usage);
    expect(untrusted.stderr.join('\n')).toMatch(
      /SERVER_UNTRUSTED: the certificate of https:\/\/127\.0\.0\.1:\d+ does not verify.*--ca-file/,
    );
    const trusted = client(['--ca-file', tls.cert]);
    expect(await trusted.exited).toBe(ExitCode.ok);
    expect(
      (JSON.parse(trusted.stdout.at(-1) ?? '{}') as { pubkeys?: string[] }).pubkeys,
    ).toHaveLength(2);
  }, 60_000);

  it('--webhook-client-ca: the webhook answers only a client certificate that CA signed', async () => {
    const dir = await tempDir();
    const tls = await makeCert(dir, 'server');
    const apiServer = await makeClientCert(dir, 'kube-apiserver');
    const stranger = await makeClientCert(dir, 'stranger');
    const tokens = join(dir, 'tokens');
    await writeFile(tokens, `${'e5'.repeat(32)}\n`, { mode: 0o600 });
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--auth-token-file',
      tokens,
      '--webhook-client-ca',
      apiServer.ca,
    ]);
    const ca = await readFile(tls.cert);
    const base = reviewOf({ namespace: 'default' });
    const review = { ...base, request: { ...base.request, uid: 'u-1' } };
    const url = `${server.url}/v1/webhooks/pod-deletion`;
    const files = async (c: { cert: string; key: string }) => ({
      cert: await readFile(c.cert),
      key: await readFile(c.key),
    });
    const none = await post(url, ca, review);
    expect([none.status, JSON.parse(none.text).error.code]).toEqual([403, 'FORBIDDEN']);
    const wrong = await post(url, ca, review, await files(stranger));
    expect(wrong.status).toBe(403);
    const right = await post(url, ca, review, await files(apiServer));
    expect(right.status).toBe(200);
    expect(JSON.parse(right.text).response).toEqual({ uid: 'u-1', allowed: true });
  }, 30_000);

  it('without --webhook-client-ca it still starts, says why deletions need the watcher, and the webhook answers an admin token only', async () => {
    const dir = await tempDir();
    const tls = await makeCert(dir, 'server');
    const apiServer = await makeClientCert(dir, 'kube-apiserver');
    const admin = 'e6'.repeat(32);
    const tokens = join(dir, 'tokens');
    await writeFile(tokens, `${admin}\n`, { mode: 0o600 });
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--auth-token-file',
      tokens,
    ]);
    const warnings = server.stdout
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 40)
      .map((l) => l.msg);
    expect(warnings).toEqual(
      expect.arrayContaining([expect.stringMatching(/^no --webhook-client-ca and no --kube: /)]),
    );
    const ca = await readFile(tls.cert);
    const url = `${server.url}/v1/webhooks/pod-deletion`;
    const review = reviewOf({ namespace: 'default' });
    const client = { cert: await readFile(apiServer.cert), key: await readFile(apiServer.key) };
    for (const refused of [await post(url, ca, review), await post(url, ca, review, client)])
      expect([refused.status, JSON.parse(refused.text).error.code]).toEqual([403, 'FORBIDDEN']);
    const byAdmin = await post(url, ca, review, undefined, { authorization: `Bearer ${admin}` });
    expect(byAdmin.status).toBe(200);
  }, 30_000);
});
