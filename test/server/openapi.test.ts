import SwaggerParser from '@apidevtools/swagger-parser';
import type { Express } from 'express';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { ERROR_CODES } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { composeApp } from '../../src/server/root.js';
import { http, openTempStore, startTestServer } from '../helpers.js';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every route express serves, as "METHOD /path/{param}". */
function expressRoutes(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: readonly Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const path = layer.route.path.replace(/:(\w+)/g, '{$1}');
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on && method !== '_all') found.push(`${method.toUpperCase()} ${path}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return found.sort();
}

async function documented(
  url: string,
): Promise<{ doc: Record<string, unknown>; routes: string[] }> {
  const res = await http<{ paths: Record<string, Record<string, unknown>> }>(
    url,
    'GET',
    '/openapi.json',
  );
  expect(res.status).toBe(200);
  const routes = Object.entries(res.body.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => ['get', 'post', 'delete', 'put', 'patch'].includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
  return { doc: res.body, routes: routes.sort() };
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document that lists every error code', async () => {
    const server = await startTestServer();
    const { doc } = await documented(server.url);
    // Throws on anything that is not valid OpenAPI (3.1 schema, and every $ref resolves).
    const validated: object = await SwaggerParser.validate(structuredClone(doc) as never);
    expect(validated).toMatchObject({ openapi: '3.1.0' });
    const schemas = (doc as { components: { schemas: { ErrorCode: { enum: string[] } } } })
      .components.schemas;
    expect(schemas.ErrorCode.enum).toEqual(ERROR_CODES);
  });

  it('describes every route express serves, and nothing more', async () => {
    const store = await openTempStore();
    const { app } = composeApp({
      store,
      group: GroupCommitter.of(store),
      log: createLogger('silent'),
      config: { reuseDelayMs: 1000, maxKeysPerPod: 64, maxTotalKeys: undefined },
    });
    const server = await startTestServer();
    const { routes } = await documented(server.url);
    const served = expressRoutes(app);
    expect(served.length).toBeGreaterThan(20);
    expect(routes).toEqual(served);
  });

  it('every documented route answers (no NOT_FOUND, no 405)', async () => {
    const server = await startTestServer();
    const { routes } = await documented(server.url);
    const values: Record<string, string> = {
      pod: 'validator-0',
      namespace: 'validators',
      pubkey: `0x${'ab'.repeat(48)}`,
    };
    for (const route of routes) {
      const [method = '', template = ''] = route.split(' ');
      const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => values[name] ?? name);
      const res = await http<{ error?: { code: string } }>(
        server.url,
        method,
        path,
        method === 'POST' ? {} : undefined,
      );
      expect([route, res.status === 405 || res.body.error?.code === 'NOT_FOUND']).toEqual([
        route,
        false,
      ]);
    }
  });
});
