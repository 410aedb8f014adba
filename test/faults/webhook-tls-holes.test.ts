// Faults a second adversarial review found in the deletion webhook's client-certificate check
// (issue 12, point 2; src/server/webhook.ts, src/server/tls.ts), kept as reproductions: each
// asserts the safe behaviour, and fails while the fault is there. Over real HTTPS on port 0.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Auth } from '../../src/server/auth.js';
import { type AllocationBody, https, startTestServer, tlsClient, until } from '../helpers.js';
import { makeCert, makeClientCert, signCert } from '../support/certs.js';
import { review } from '../support/review.js';

const _run = promisify(execFile);
const HOOK = '/v1/webhooks/pod-deletion';
const ADMIN = 'd4'.repeat(32);
const bearer = { authorization: `Bearer ${ADMIN}` };

let dir: string;
let server: { cert: string; key: string };
let oldApi: { ca: string; caKey: string; cert: string; key: string };
let newApi: { ca: string; caKey: string; cert: string; key: string };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pkm-break2-certs-'));
  await mkdir(join(dir, 'old'));
  await mkdir(join(dir, 'new'));
  server = await makeCert(dir, 'server');
  oldApi = await makeClientCert(join(dir, 'old'), 'kube-apiserver');
  // Another name: a CA of the same name but another key trips an OpenSSL 3.0 error-queue quirk
  // (webhook-auth.test.ts 'a forged issuer') that drops the connection.
  newApi = await makeClientCert(join(dir, 'new'), 'kube-apiserver-next');
}, 30_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** POSTs a review through `agent` (keep-alive, TLS session cache) with `client`'s certificate. */
async function post(
  url: string,
  agent: Agent | false,
  client: { cert: string; key: string },
  body: unknown,
): Promise<{ status: number; reused: boolean; resumed: boolean }> {
  const tls = await tlsClient(server.cert, client);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${HOOK}`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' }, ...tls },
      (res) => {
        res.resume();
        res.on('end', () => {
          const socket = req.socket as import('node:tls').TLSSocket;
          resolve({
            status: res.statusCode ?? 0,
            reused: req.reusedSocket,
            resumed: socket.isSessionReused(),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function rotatedServer() {
  const caFile = join(dir, `ca-${Math.random().toString(36).slice(2)}.crt`);
  await copyFile(oldApi.ca, caFile);
  const s = await startTestServer({
    auth: new Auth({ adminTokens: [ADMIN] }),
    tls: { ...server, clientCa: caFile },
  });
  const admin = await tlsClient(server.cert);
  const res = await https<AllocationBody>(
    s.url,
    'POST',
    '/v1/namespaces/validators/pods/validator-0/keys',
    admin,
    { count: 1 },
    bearer,
  );
  expect(res.status).toBe(200);
  /** The operator rotates the webhook client CA (the old one, or its certificate, leaked). */
  const rotate = async () => {
    await writeFile(caFile, await readFile(newApi.ca));
    process.emit('SIGHUP');
    // Until the server answers a fresh connection with the old certificate no more. The probe
    // is an UPDATE review, which releases nothing: a deletion review sent while the reload is
    // still on its way (a loaded machine) would release the very keys the tests then count.
    await until(
      async () =>
        (await post(s.url, false, oldApi, review({ operation: 'UPDATE' }))).status === 403,
    );
  };
  const heldKeys = async () =>
    (
      await https<{ pubkeys: string[] }>(
        s.url,
        'GET',
        '/v1/namespaces/validators/pods/validator-0/keys',
        admin,
        undefined,
        bearer,
      )
    ).body.pubkeys;
  return { url: s.url, rotate, heldKeys };
}

describe('break: the webhook client CA is rotated (tls.ts reload)', () => {
  it('W1 a kept-alive connection made with the old CA’s certificate is refused after the rotation', async () => {
    // socket.authorized is fixed at the handshake; setSecureContext changes only new ones. A
    // connection the old (leaked) certificate opened before the rotation keeps forging
    // reviews for as long as it is kept alive.
    const s = await rotatedServer();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await post(s.url, agent, oldApi, review({ operation: 'UPDATE' }));
      expect(first.status).toBe(200); // before the rotation: the API server's own certificate
      await s.rotate();
      // The server closed the connection the old CA let in: the agent opens a new one, whose
      // handshake checks the old certificate against the new CA.
      const forged = await post(s.url, agent, oldApi, review());
      expect(forged.reused).toBe(false);
      expect(forged.status).toBe(403);
      expect(await s.heldKeys()).toHaveLength(1);
    } finally {
      agent.destroy();
    }
  });

  it('W2 what held: a TLS session from before the rotation is refused like a new handshake', async () => {
    // A new connection that tries to resume a session (ticket) the old certificate
    // authenticated: the new context does not resume it, so the handshake verifies afresh.
    const s = await rotatedServer();
    const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    try {
      await post(s.url, agent, oldApi, review({ operation: 'UPDATE' }));
      // This agent does resume its sessions: the control.
      expect((await post(s.url, agent, oldApi, review({ operation: 'UPDATE' }))).resumed).toBe(
        true,
      );
      await s.rotate();
      const forged = await post(s.url, agent, oldApi, review());
      expect(forged.status).toBe(403);
      expect(await s.heldKeys()).toHaveLength(1);
    } finally {
      agent.destroy();
    }
  });

  it('W3 what held: a fresh connection with the old certificate is refused, the new CA’s certificate taken', async () => {
    const s = await rotatedServer();
    await s.rotate();
    expect((await post(s.url, false, newApi, review({ operation: 'UPDATE' }))).status).toBe(200);
  });
});

describe('break: certificate chains', () => {
  it('W4 what held: a leaf the CA signed (no CA:TRUE) cannot sign a certificate the webhook takes', async () => {
    // The API server's own client certificate (no basicConstraints) used as an intermediate.
    const sub = join(dir, 'sub');
    await mkdir(sub, { recursive: true });
    const { cert, key } = await signCert(sub, 'kube-apiserver', oldApi);
    const chain = join(sub, 'chain.crt');
    await writeFile(
      chain,
      Buffer.concat([await readFile(cert), await readFile(oldApi.cert)]).toString(),
    );
    const s = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      tls: { ...server, clientCa: oldApi.ca },
    });
    expect((await post(s.url, false, { cert: chain, key }, review())).status).toBe(403);
  });
});
