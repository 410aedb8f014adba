import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { startServerProcess } from './spawn.js';

const run = promisify(execFile);

/** A self-signed certificate for 127.0.0.1, made with openssl. */
async function makeCert(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  return { cert, key };
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
});
