// Who may report a pod deleted (DESIGN.md "Safety rules": deletion reviews count only from the
// API server, by its client certificate, or an admin token once any authentication is on).
// Over real HTTPS on port 0, with certificates openssl makes for each run.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PkmError } from '../../src/errors.js';
import type { PodToken, TokenReviewer } from '../../src/kube/token-review.js';
import { createLogger } from '../../src/log.js';
import { Auth } from '../../src/server/auth.js';
import { openAuth } from '../../src/server/auth-setup.js';
import { parseServerConfig } from '../../src/server/config.js';
import {
  type AllocationBody,
  type AssignmentsBody,
  https,
  type JsonAnswer,
  startTestServer,
  type TestServer,
  type TlsClient,
  tlsClient,
} from '../helpers.js';
import { makeCert, makeClientCert, signCert } from '../support/certs.js';
import { KUBELET, review } from '../support/review.js';

const HOOK = '/v1/webhooks/pod-deletion';
const ADMIN = 'c3'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const OLD_UID = review().request.oldObject.metadata.uid;

/** TokenReview's answers, without a Kubernetes API: each pod's token names that pod. */
const POD_TOKENS: Record<string, PodToken> = {
  'token-of-validator-0': { pod: 'validators/validator-0', uid: OLD_UID, expiresAt: undefined },
  'token-of-validator-1': { pod: 'validators/validator-1', uid: 'uid-1', expiresAt: undefined },
};
const reviewer: TokenReviewer = {
  async review(token) {
    const found = POD_TOKENS[token];
    if (!found) throw new PkmError('INVALID_TOKEN', 'the token is not valid');
    return found;
  },
};

interface Certs {
  /** The server's own certificate (self-signed for 127.0.0.1). */
  server: { cert: string; key: string };
  /** The API server's webhook client certificate, and the CA that signed it. */
  apiServer: { ca: string; cert: string; key: string };
  /** Another CA's client certificate. */
  otherCa: { cert: string; key: string };
  /** CN=kube-apiserver, from a CA with the same name as the API server's but another key. */
  sameName: { cert: string; key: string };
  /** CN=kube-apiserver, self-signed. */
  selfSigned: { cert: string; key: string };
  /** The API server's CA signed it, but for servers only (extendedKeyUsage serverAuth). */
  serverOnly: { cert: string; key: string };
}

let dir: string;
let certs: Certs;
beforeAll(async () => {
  // Made once for the file, not with tempDir() (whose cleanup runs after each test).
  dir = await mkdtemp(join(tmpdir(), 'pkm-webhook-certs-'));
  await mkdir(join(dir, 'same-name'));
  await mkdir(join(dir, 'self'));
  const apiServer = await makeClientCert(dir, 'kube-apiserver');
  certs = {
    server: await makeCert(dir, 'server'),
    apiServer,
    otherCa: await makeClientCert(dir, 'stranger'),
    sameName: await makeClientCert(join(dir, 'same-name'), 'kube-apiserver'),
    selfSigned: await makeCert(join(dir, 'self'), 'kube-apiserver'),
    serverOnly: await signCert(
      dir,
      'server-only',
      { cert: apiServer.ca, key: apiServer.caKey },
      'serverAuth',
    ),
  };
}, 30_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function serve(clientCa: boolean): Promise<TestServer> {
  return startTestServer({
    auth: new Auth({ adminTokens: [ADMIN], reviewer }),
    tls: { ...certs.server, ...(clientCa ? { clientCa: certs.apiServer.ca } : {}) },
  });
}

/** Trusts the server's certificate; presents `client`'s certificate when given. */
const as = (client?: { cert: string; key: string }) => tlsClient(certs.server.cert, client);

async function allocate(server: TestServer, name: string): Promise<string[]> {
  const res = await https<AllocationBody>(
    server.url,
    'POST',
    `/v1/namespaces/validators/pods/${name}/keys`,
    await as(),
    { count: 2 },
    bearer(`token-of-${name}`),
  );
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
}

async function pods(server: TestServer): Promise<Record<string, string[]>> {
  const res = await https<AssignmentsBody>(
    server.url,
    'GET',
    '/v1/assignments',
    await as(),
    undefined,
    bearer(ADMIN),
  );
  return res.body.pods;
}

async function refusedCount(server: TestServer): Promise<number> {
  const metrics = await https<string>(server.url, 'GET', '/metrics', await as());
  const line = /^pkm_webhook_reviews_total\{outcome="refused"\} (\d+)$/m.exec(metrics.body);
  return Number(line?.[1] ?? 0);
}

interface Attempt {
  readonly who: string;
  readonly tls: TlsClient;
  readonly headers?: Record<string, string>;
  /** Default: a graceful DELETE by the StatefulSet controller. */
  readonly body?: unknown;
}

/** Callers that are neither the API server nor an admin, each with a review of validator-0. */
async function strangers(): Promise<Attempt[]> {
  return [
    { who: 'no credential at all', tls: await as() },
    { who: "the pod's own token", tls: await as(), headers: bearer('token-of-validator-0') },
    { who: "another pod's token", tls: await as(), headers: bearer('token-of-validator-1') },
    { who: 'a certificate another CA signed', tls: await as(certs.otherCa) },
    { who: 'a self-signed certificate', tls: await as(certs.selfSigned) },
    // OpenSSL checks the purpose of a client's certificate: a server's will not do.
    { who: 'a certificate for servers only', tls: await as(certs.serverOnly) },
    {
      // The kubelet's final DELETE would confirm the stop: the keys would go straight back to
      // the next pod of that name, while this one may still run.
      who: "a forged review of the kubelet's final DELETE, from another pod",
      tls: await as(),
      headers: bearer('token-of-validator-1'),
      body: review({ userInfo: KUBELET, grace: 0 }),
    },
    {
      who: 'a forged review with a certificate another CA signed',
      tls: await as(certs.otherCa),
      body: review({ userInfo: KUBELET, grace: 0 }),
    },
  ];
}

async function send(server: TestServer, a: Attempt): Promise<JsonAnswer<unknown>> {
  return https(server.url, 'POST', HOOK, a.tls, a.body ?? review(), a.headers);
}

function errorOf(res: JsonAnswer<unknown>): { code?: string; message?: string } {
  return (res.body as { error?: { code?: string; message?: string } }).error ?? {};
}

describe('the deletion webhook with --webhook-client-ca (authentication on)', () => {
  it('refuses everyone but the API server and admins with 403 FORBIDDEN, and the store does not change', async () => {
    const server = await serve(true);
    const keys = await allocate(server, 'validator-0');
    const before = await server.store.rawEntries();
    const attempts = await strangers();
    for (const attempt of attempts) {
      const res = await send(server, attempt);
      const error = errorOf(res);
      expect([attempt.who, res.status, error.code]).toEqual([attempt.who, 403, 'FORBIDDEN']);
      expect(error.message).toMatch(/only the API server.*--webhook-client-ca.*or an admin token/);
    }
    expect(await server.store.rawEntries()).toEqual(before);
    expect(await pods(server)).toEqual({ 'validators/validator-0': keys });
    expect(await refusedCount(server)).toBe(attempts.length);
  });

  it("refuses a certificate that names the API server's CA as issuer but another key signed", async () => {
    const server = await serve(true);
    const keys = await allocate(server, 'validator-0');
    const before = await server.store.rawEntries();
    const forged = { who: 'a forged issuer', tls: await as(certs.sameName) };
    // The signature check fails (CERT_SIGNATURE_FAILURE), so the socket is not authorized and
    // the webhook answers 403. Node 20 (OpenSSL 3.0) also leaves that failure on OpenSSL's error
    // queue, where the connection's next read finds it and drops the connection, often before
    // the 403 is written. Either way this caller gets no release.
    const outcome = await send(server, forged).then(
      (res) => `${res.status} ${errorOf(res).code}`,
      (err: Error) => `dropped: ${err.message}`,
    );
    expect(outcome).toMatch(/^(403 FORBIDDEN|dropped: (socket hang up|.*ECONNRESET.*))$/);
    expect(await server.store.rawEntries()).toEqual(before);
    expect(await pods(server)).toEqual({ 'validators/validator-0': keys });
    // Only that connection: the API server's next review goes through.
    const apiServer = await send(server, { who: 'the API server', tls: await as(certs.apiServer) });
    expect(apiServer.status).toBe(200);
    expect(await pods(server)).toEqual({});
  });

  it('says a pod token is not enough', async () => {
    const server = await serve(true);
    const res = await send(server, {
      who: 'a pod',
      tls: await as(),
      headers: bearer('token-of-validator-0'),
    });
    expect(errorOf(res).message).toMatch(/not a pod token/);
  });

  it('a token that is not valid is 401 INVALID_TOKEN, and changes nothing either', async () => {
    const server = await serve(true);
    await allocate(server, 'validator-0');
    const before = await server.store.rawEntries();
    const res = await send(server, { who: 'a bad token', tls: await as(), headers: bearer('x') });
    expect([res.status, errorOf(res).code]).toEqual([401, 'INVALID_TOKEN']);
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it("the API server's client certificate releases the deleted pod's keys", async () => {
    const server = await serve(true);
    await allocate(server, 'validator-0');
    const other = await allocate(server, 'validator-1');
    const res = await send(server, { who: 'the API server', tls: await as(certs.apiServer) });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      response: { uid: review().request.uid, allowed: true },
    });
    expect(await pods(server)).toEqual({ 'validators/validator-1': other });
    expect(await refusedCount(server)).toBe(0);
  });

  it('an admin token releases them too, without a certificate', async () => {
    const server = await serve(true);
    await allocate(server, 'validator-0');
    const res = await send(server, { who: 'an admin', tls: await as(), headers: bearer(ADMIN) });
    expect(res.status).toBe(200);
    expect(await pods(server)).toEqual({});
  });
});

describe('the deletion webhook without --webhook-client-ca (authentication on)', () => {
  it("answers admin tokens only: even the API server's certificate is refused, and nothing changes", async () => {
    const server = await serve(false);
    const keys = await allocate(server, 'validator-0');
    const before = await server.store.rawEntries();
    const attempts = [
      ...(await strangers()),
      // Without the CA the server does not ask for a certificate, so none is checked.
      { who: "the API server's certificate", tls: await as(certs.apiServer) },
    ];
    for (const attempt of attempts) {
      const res = await send(server, attempt);
      const error = errorOf(res);
      expect([attempt.who, res.status, error.code]).toEqual([attempt.who, 403, 'FORBIDDEN']);
      expect(error.message).toMatch(/only an admin token.*no --webhook-client-ca/);
    }
    expect(await server.store.rawEntries()).toEqual(before);
    expect(await pods(server)).toEqual({ 'validators/validator-0': keys });
    expect(await refusedCount(server)).toBe(attempts.length);

    const admin = await send(server, { who: 'an admin', tls: await as(), headers: bearer(ADMIN) });
    expect(admin.status).toBe(200);
    expect(await pods(server)).toEqual({});
  });
});

describe('at start', () => {
  /** The warnings openAuth logs for these flags (as `pkm server` gets them). */
  async function warnings(flags: Record<string, unknown>): Promise<string[]> {
    const tokens = join(dir, 'admin-tokens');
    await writeFile(tokens, `${ADMIN}\n`, { mode: 0o600 });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const config = parseServerConfig({
      listen: '0.0.0.0:8443',
      authTokenFile: tokens,
      tlsCert: certs.server.cert,
      tlsKey: certs.server.key,
      ...flags,
    });
    await openAuth(config, createLogger('info', sink));
    return lines
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 40)
      .map((l) => l.msg);
  }

  it('without --webhook-client-ca, warns that the watcher is the only way deletions arrive', async () => {
    expect(await warnings({ kube: true })).toEqual([
      expect.stringMatching(
        /^no --webhook-client-ca: the deletion webhook answers admin tokens only, so the pod watcher \(--kube\) is the only way pod deletions reach this server, unless the API server sends the webhook an admin token/,
      ),
    ]);
  });

  it('without --kube either, says that only releases and operators remain', async () => {
    expect(await warnings({})).toEqual([
      expect.stringMatching(
        /^no --webhook-client-ca and no --kube: .*only through pods' own releases \(pkm release\) and operators/,
      ),
    ]);
  });

  it('with --webhook-client-ca, warns of nothing', async () => {
    expect(await warnings({ kube: true, webhookClientCa: certs.apiServer.ca })).toEqual([]);
  });
});
