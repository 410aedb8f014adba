// Authentication and authorisation over real HTTP: pods by TokenReview (against a fake
// Kubernetes API on 127.0.0.1 speaking authentication.k8s.io/v1), operators by admin token.
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeTokenReviewer } from '../../src/kube/token-review.js';
import { Auth, parseAdminTokens } from '../../src/server/auth.js';
import { parseServerConfig } from '../../src/server/config.js';
import { type AllocationBody, http, MINUTE, startTestServer, type TestServer } from '../helpers.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const ADMIN = 'a1'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let api: FakeKubeApi;
let server: TestServer;

async function serve(opts: { publicAssignments?: boolean; rateLimitPerMinute?: number } = {}) {
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfigYaml());
  // One clock for the server, its review cache and the API server's token expiry.
  const now = () => server.clock.now();
  api.now = now;
  const auth = new Auth({
    adminTokens: [ADMIN],
    reviewer: new KubeTokenReviewer(kc, 'pkm'),
    publicAssignments: opts.publicAssignments ?? false,
    clock: now,
  });
  server = await startTestServer({
    auth,
    ...(opts.rateLimitPerMinute ? { rateLimitPerMinute: opts.rateLimitPerMinute } : {}),
  });
}

beforeEach(async () => {
  api = new FakeKubeApi();
  await api.start();
});
afterEach(async () => {
  await api.stop();
});

describe('pod tokens (TokenReview)', () => {
  it('lets a pod allocate, read, heartbeat and release only its own keys', async () => {
    await serve();
    const a = api.issueToken('default', 'validator-0');
    const b = api.issueToken('default', 'validator-1');
    const own = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 2 },
      bearer(a),
    );
    expect(own.status).toBe(200);
    expect(own.body.keys).toHaveLength(2);
    await http(server.url, 'POST', '/v1/pods/validator-1/keys', { count: 1 }, bearer(b));
    const before = await server.store.rawEntries();
    const attempts: Array<[string, string, unknown]> = [
      ['GET', '/v1/pods/validator-1/keys', undefined],
      ['POST', '/v1/pods/validator-1/keys', { count: 1 }],
      ['DELETE', '/v1/pods/validator-1/keys', undefined],
      ['POST', '/v1/pods/validator-1/heartbeat', { pubkeys: [] }],
      ['POST', '/v1/namespaces/other/pods/validator-0/keys', { count: 1 }],
    ];
    for (const [method, path, body] of attempts) {
      const res = await http(server.url, method, path, body, bearer(a));
      expect([method, path, res.status, res.body.error.code]).toEqual([
        method,
        path,
        403,
        'FORBIDDEN',
      ]);
    }
    expect(await server.store.rawEntries()).toEqual(before);
    const read = await http<{ pubkeys: string[] }>(
      server.url,
      'GET',
      '/v1/pods/validator-0/keys',
      undefined,
      bearer(a),
    );
    expect(read.body.pubkeys).toEqual(own.body.keys.map((k) => k.pubkey));
    const released = await http<{ released: string[] }>(
      server.url,
      'DELETE',
      '/v1/pods/validator-0/keys',
      undefined,
      bearer(a),
    );
    expect(released.body.released).toHaveLength(2);
  });

  it('maps a token to its namespace: a pod in "validators" reaches its namespaced route', async () => {
    await serve();
    const token = api.issueToken('validators', 'node-3');
    const ok = await http(
      server.url,
      'POST',
      '/v1/namespaces/validators/pods/node-3/keys',
      { count: 1 },
      bearer(token),
    );
    expect(ok.status).toBe(200);
    const plain = await http(
      server.url,
      'POST',
      '/v1/pods/node-3/keys',
      { count: 1 },
      bearer(token),
    );
    expect(plain.status).toBe(403); // the same name in "default" is another pod
  });

  it('answers 401 to an invalid, expired or missing token, and changes nothing', async () => {
    await serve();
    const expired = api.issueToken('default', 'validator-0', 30);
    server.clock.advance(31_000);
    const before = await server.store.rawEntries();
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'AUTH_REQUIRED'],
      [bearer('not-a-token'), 'INVALID_TOKEN'],
      [bearer(expired), 'INVALID_TOKEN'],
      [{ authorization: 'Token abc' }, 'INVALID_TOKEN'],
    ];
    for (const [headers, code] of cases) {
      const res = await http(
        server.url,
        'POST',
        '/v1/pods/validator-0/keys',
        { count: 1 },
        headers,
      );
      expect([res.status, res.body.error.code]).toEqual([401, code]);
    }
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it('caches a review briefly, and never past the token expiry', async () => {
    await serve();
    const token = api.issueToken('default', 'validator-0', 90);
    const read = () =>
      http(server.url, 'GET', '/v1/pods/validator-0/keys', undefined, bearer(token));
    expect((await read()).status).toBe(200);
    expect((await read()).status).toBe(200);
    expect(api.reviews).toBe(1); // the second request used the cached review
    server.clock.advance(MINUTE + 1); // past the cache's own bound, token still valid
    expect((await read()).status).toBe(200);
    expect(api.reviews).toBe(2);
    api.revoke(token);
    server.clock.advance(29_000); // 89 s: the cached review still holds, until the token's expiry
    expect((await read()).status).toBe(200);
    expect(api.reviews).toBe(2);
    server.clock.advance(1_001); // past exp: the cache is not trusted, the API says no
    const after = await read();
    expect([after.status, after.body.error.code]).toEqual([401, 'INVALID_TOKEN']);
    expect(api.reviews).toBe(3);
  });

  it('answers 503 AUTH_UNAVAILABLE when the API server is down', async () => {
    await serve();
    const token = api.issueToken('default', 'validator-0');
    await api.stop();
    const res = await http(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 1 },
      bearer(token),
    );
    expect([res.status, res.body.error.code]).toEqual([503, 'AUTH_UNAVAILABLE']);
    expect(res.body.error.message).not.toContain(token);
    api = new FakeKubeApi();
    await api.start(); // for afterEach
  });
});

describe('admin tokens', () => {
  const adminRoutes: Array<[string, string, unknown]> = [
    ['DELETE', '/v1/pods/validator-9/keys', undefined],
    ['POST', `/v1/keys/0x${'ab'.repeat(48)}/retire`, {}],
    ['GET', '/v1/deposits', undefined],
    ['GET', '/v1/events', undefined],
    ['GET', '/v1/assignments', undefined],
    ['GET', '/assignments', undefined],
    ['POST', '/v1/admin/kek-rotation', { newKekFile: '/nonexistent' }],
    ['GET', '/v1/status', undefined],
  ];

  it('needs a token for every admin route: 401 without, 401 wrong, 403 for a pod', async () => {
    await serve();
    const pod = api.issueToken('default', 'validator-0');
    for (const [method, path, body] of adminRoutes) {
      const none = await http(server.url, method, path, body);
      expect([path, none.status, none.body.error.code]).toEqual([path, 401, 'AUTH_REQUIRED']);
      const wrong = await http(server.url, method, path, body, bearer('b2'.repeat(32)));
      expect([path, wrong.status, wrong.body.error.code]).toEqual([path, 401, 'INVALID_TOKEN']);
      const asPod = await http(server.url, method, path, body, bearer(pod));
      expect([path, asPod.status, asPod.body.error.code]).toEqual([path, 403, 'FORBIDDEN']);
    }
  });

  it('lets an admin through, by bearer token or, for the page, as a Basic password', async () => {
    await serve();
    const admin = bearer(ADMIN);
    await http(server.url, 'POST', '/v1/pods/validator-9/keys', { count: 1 }, admin);
    const released = await http<{ released: string[] }>(
      server.url,
      'DELETE',
      '/v1/pods/validator-9/keys',
      undefined,
      admin,
    );
    expect(released.body.released).toHaveLength(1);
    for (const path of ['/v1/deposits', '/v1/events', '/v1/assignments', '/v1/status']) {
      expect((await http(server.url, 'GET', path, undefined, admin)).status).toBe(200);
    }
    const page = await http<string>(server.url, 'GET', '/assignments');
    expect(page.headers.get('www-authenticate')).toMatch(/^Basic realm="pkm"/);
    const basic = `Basic ${Buffer.from(`ops:${ADMIN}`).toString('base64')}`;
    const shown = await http<string>(server.url, 'GET', '/assignments', undefined, {
      authorization: basic,
    });
    expect(shown.status).toBe(200);
    expect(shown.body).toContain('<table');
    const missing = await http(
      server.url,
      'POST',
      '/v1/admin/kek-rotation',
      { newKekFile: '/nonexistent' },
      admin,
    );
    expect([missing.status, missing.body.error.code]).toEqual([400, 'INVALID_BODY']);
    expect(missing.body.error.message).toMatch(
      /^newKekFile \/nonexistent: cannot be read \(ENOENT\)/,
    );
  });

  it('serves /assignments without a token with --public-assignments, and nothing else', async () => {
    await serve({ publicAssignments: true });
    expect((await http(server.url, 'GET', '/assignments')).status).toBe(200);
    expect((await http(server.url, 'GET', '/v1/assignments')).status).toBe(200);
    expect((await http(server.url, 'GET', '/v1/events')).status).toBe(401);
  });

  it('keeps probes and metrics open', async () => {
    await serve();
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json'])
      expect((await http(server.url, 'GET', path)).status).toBe(200);
  });

  it('refuses tokens shorter than 256 bits', () => {
    expect(parseAdminTokens(`# ops\n${'ab'.repeat(32)}\n`, 'f')).toEqual(['ab'.repeat(32)]);
    expect(() => parseAdminTokens('ab'.repeat(31), 'f')).toThrow(/at least 256 bits/);
    expect(() => parseAdminTokens('\n# none\n', 'f')).toThrow(/no token/);
  });
});

describe('limits and listening', () => {
  it('rate-limits allocations per caller, with Retry-After', async () => {
    await serve({ rateLimitPerMinute: 3 });
    const a = api.issueToken('default', 'validator-0');
    const b = api.issueToken('default', 'validator-1');
    for (let i = 0; i < 3; i++) {
      const ok = await http(
        server.url,
        'POST',
        '/v1/pods/validator-0/keys',
        { count: 1 },
        bearer(a),
      );
      expect(ok.status).toBe(200);
    }
    const limited = await http(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 1 },
      bearer(a),
    );
    expect([limited.status, limited.body.error.code]).toEqual([429, 'RATE_LIMITED']);
    expect(Number(limited.headers.get('retry-after'))).toBe(20);
    const other = await http(
      server.url,
      'POST',
      '/v1/pods/validator-1/keys',
      { count: 1 },
      bearer(b),
    );
    expect(other.status).toBe(200);
    server.clock.advance(20_000);
    const again = await http(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 1 },
      bearer(a),
    );
    expect(again.status).toBe(200);
  });

  it('refuses to listen beyond loopback without auth, unless --insecure', () => {
    expect(() => parseServerConfig({ listen: '0.0.0.0:8000' })).toThrow(
      /refusing to listen on 0\.0\.0\.0:8000 without authentication.*--auth-token-file/,
    );
    expect(parseServerConfig({ listen: '0.0.0.0:8000', insecure: true }).auth.insecure).toBe(true);
    expect(parseServerConfig({ listen: '0.0.0.0:8000', authTokenFile: '/t' }).listen.host).toBe(
      '0.0.0.0',
    );
    expect(parseServerConfig({ listen: '[::1]:8000' }).listen.host).toBe('::1');
    expect(() => parseServerConfig({ webhookClientCa: '/ca.pem' })).toThrow(/needs --tls-cert/);
  });
});
