// The allocation's shortcut past express (src/server/allocation-shortcut.ts): it serves only
// plain allocations in their canonical spelling, and answers each of them as the express route
// answers the same request spelled otherwise (here with a query string, which only express
// takes): the same status, code, message and headers, the same metric and log labels.
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { createLogger } from '../../src/log.js';
import { allocationShortcut } from '../../src/server/allocation-shortcut.js';
import { Auth } from '../../src/server/auth.js';
import { composeApp } from '../../src/server/root.js';
import {
  type AllocationBody,
  http,
  MINUTE,
  onCleanup,
  openTempStore,
  startTestServer,
} from '../helpers.js';

const ADMIN = 'c3'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The shortcut over the real express app, counting the requests it hands to express. */
async function countingServer(): Promise<{ url: string; viaExpress: () => number }> {
  const store = await openTempStore();
  const log = createLogger('silent');
  const { app, allocator, metrics, proofs } = composeApp({
    store,
    group: GroupCommitter.of(store),
    log,
    config: { reuseDelayMs: 20 * MINUTE, maxKeysPerPod: 64, maxTotalKeys: undefined },
  });
  let handed = 0;
  const express: RequestListener = (req, res) => {
    handed++;
    app(req, res);
  };
  const listener = allocationShortcut(
    { allocator, metrics, log, namespaces: [], auth: new Auth({ adminTokens: [] }) },
    express,
  );
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  onCleanup(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    proofs.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, viaExpress: () => handed };
}

describe('the allocation shortcut', () => {
  it('serves canonical plain allocations itself and hands every other spelling to express', async () => {
    const { url, viaExpress } = await countingServer();
    const one = JSON.stringify({ count: 1 });
    const served = async (path: string, headers: Record<string, string> = {}) => {
      const before = viaExpress();
      const res = await http<AllocationBody>(url, 'POST', path, one, headers);
      return { status: res.status, keys: res.body.keys?.length, express: viaExpress() > before };
    };
    expect(await served('/v1/pods/a/keys')).toEqual({ status: 200, keys: 1, express: false });
    expect(await served('/v1/namespaces/vals/pods/b.c/keys')).toEqual({
      status: 200,
      keys: 1,
      express: false,
    });
    // Every other spelling is express's, and express still serves it.
    for (const path of ['/v1/pods/d/keys?x=1', '/v1/pods/e/keys/', '/V1/pods/f/keys']) {
      expect([path, await served(path)]).toEqual([path, { status: 200, keys: 1, express: true }]);
    }
    expect(
      await served('/v1/pods/g/keys', { 'content-type': 'application/json; charset=UTF-8' }),
    ).toEqual({ status: 200, keys: 1, express: true });
    const before = viaExpress();
    expect((await http(url, 'GET', '/v1/pods/a/keys')).status).toBe(200);
    expect(viaExpress()).toBe(before + 1);
  });

  it('refuses as the express route refuses: the same status, code and message, nothing changed', async () => {
    const { url, store } = await startTestServer({ namespaces: ['vals'] });
    const before = await store.rawEntries();
    const cases: Array<[string, string]> = [
      ['/v1/pods/-val/keys', '{"count":1}'],
      ['/v1/pods/a..b/keys', '{"count":1}'],
      ['/v1/namespaces/other/pods/a/keys', '{"count":1}'],
      ['/v1/namespaces/-ns/pods/a/keys', '{"count":1}'],
      ['/v1/pods/a/keys', '{"count":0}'],
      ['/v1/pods/a/keys', '{"count":65}'],
      ['/v1/pods/a/keys', '{"count":1,"more":true}'],
      ['/v1/pods/a/keys', '{"count":'],
      ['/v1/pods/a/keys', '[1]'],
      ['/v1/pods/a/keys', '2'],
    ];
    for (const [path, body] of cases) {
      const shortcut = await http(url, 'POST', path, body);
      const express = await http(url, 'POST', `${path}?via=express`, body);
      expect(shortcut.status).toBeGreaterThanOrEqual(400);
      expect([path, body, shortcut.status, shortcut.body]).toEqual([
        path,
        body,
        express.status,
        express.body,
      ]);
    }
    expect(await store.rawEntries()).toEqual(before);
  });

  it('asks for a token, refuses a wrong one and limits callers as the express route does', async () => {
    const server = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      rateLimitPerMinute: 2,
    });
    const post = (path: string, headers: Record<string, string> = {}) =>
      http(server.url, 'POST', path, '{"count":1}', headers);
    for (const headers of [{}, bearer('d4'.repeat(32)), { authorization: 'Token x' }]) {
      const shortcut = await post('/v1/pods/a/keys', headers);
      const express = await post('/v1/pods/a/keys?via=express', headers);
      expect([shortcut.status, shortcut.body]).toEqual([express.status, express.body]);
      expect(shortcut.status).toBe(401);
    }
    // The limit is one, whichever path a request takes: two pass, the third is refused.
    expect((await post('/v1/pods/a/keys', bearer(ADMIN))).status).toBe(200);
    expect((await post('/v1/pods/a/keys?via=express', bearer(ADMIN))).status).toBe(200);
    const limited = await post('/v1/pods/a/keys', bearer(ADMIN));
    const limitedExpress = await post('/v1/pods/a/keys?via=express', bearer(ADMIN));
    expect([limited.status, limited.body]).toEqual([limitedExpress.status, limitedExpress.body]);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe(limitedExpress.headers.get('retry-after'));
  });

  it('answers with the headers express sends, and counts both paths under one route', async () => {
    const { url } = await startTestServer();
    const one = '{"count":1}';
    const shortcut = await http(url, 'POST', '/v1/pods/a/keys', one, { 'x-request-id': 'req-1' });
    const express = await http(url, 'POST', '/v1/pods/b/keys?via=express', one, {
      'x-request-id': 'req-2',
    });
    for (const [res, id] of [
      [shortcut, 'req-1'],
      [express, 'req-2'],
    ] as const) {
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe(id);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(
      /pkm_http_request_duration_seconds_count\{method="POST",route="\/v1\/pods\/:pod\/keys",status="200"\} 2/,
    );
  });
});
