import { describe, expect, it } from 'vitest';
import { http, startTestServer } from '../helpers.js';

interface Case {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string;
  readonly type?: string;
  readonly status: number;
  readonly code: string;
}

const json = (v: unknown) => JSON.stringify(v);
const post = (
  path: string,
  body: string | undefined,
  status: number,
  code: string,
  type = 'application/json',
) => ({
  method: 'POST',
  path,
  ...(body === undefined ? {} : { body, type }),
  status,
  code,
});
const keys = (pod: string) => `/v1/pods/${pod}/keys`;
const one = json({ count: 1 });
/** A file that exists but holds no KEK. */
const NOT_A_KEK = new URL('../../package.json', import.meta.url).pathname;

const CASES: Case[] = [
  { name: 'upper-case pod name', ...post(keys('Validator-0'), one, 400, 'INVALID_POD_NAME') },
  { name: 'underscore in pod name', ...post(keys('val_0'), one, 400, 'INVALID_POD_NAME') },
  { name: 'pod name starting with a dash', ...post(keys('-val'), one, 400, 'INVALID_POD_NAME') },
  { name: 'pod name ending with a dot', ...post(keys('val.'), one, 400, 'INVALID_POD_NAME') },
  { name: 'empty label in pod name', ...post(keys('a..b'), one, 400, 'INVALID_POD_NAME') },
  {
    name: 'pod name of 254 characters',
    ...post(keys('a'.repeat(254)), one, 400, 'INVALID_POD_NAME'),
  },
  {
    name: 'HTML as a pod name',
    ...post(keys('%3Cscript%3Ealert(1)%3C%2Fscript%3E'), one, 400, 'INVALID_POD_NAME'),
  },
  { name: 'unicode pod name', ...post(keys('v%C3%A4lidator'), one, 400, 'INVALID_POD_NAME') },
  { name: 'emoji pod name', ...post(keys('%F0%9F%94%91'), one, 400, 'INVALID_POD_NAME') },
  { name: 'encoded slash in pod name', ...post(keys('a%2Fb'), one, 400, 'INVALID_POD_NAME') },
  { name: 'space in pod name', ...post(keys('a%20b'), one, 400, 'INVALID_POD_NAME') },
  { name: 'count 0', ...post(keys('ok'), json({ count: 0 }), 400, 'COUNT_OUT_OF_RANGE') },
  { name: 'negative count', ...post(keys('ok'), json({ count: -1 }), 400, 'COUNT_OUT_OF_RANGE') },
  {
    name: 'count above max-keys-per-pod',
    ...post(keys('ok'), json({ count: 65 }), 400, 'COUNT_OUT_OF_RANGE'),
  },
  {
    name: 'fractional count',
    ...post(keys('ok'), json({ count: 1.5 }), 400, 'COUNT_OUT_OF_RANGE'),
  },
  {
    name: 'count beyond 2^53',
    ...post(keys('ok'), '{"count":9007199254740993}', 400, 'COUNT_OUT_OF_RANGE'),
  },
  {
    name: 'count that overflows to Infinity',
    ...post(keys('ok'), '{"count":1e309}', 400, 'INVALID_BODY'),
  },
  { name: 'count as a string', ...post(keys('ok'), json({ count: '2' }), 400, 'INVALID_BODY') },
  { name: 'count null', ...post(keys('ok'), json({ count: null }), 400, 'INVALID_BODY') },
  { name: 'empty object', ...post(keys('ok'), '{}', 400, 'INVALID_BODY') },
  {
    name: 'unknown field',
    ...post(keys('ok'), json({ count: 1, force: true }), 400, 'INVALID_BODY'),
  },
  { name: 'unicode field name', ...post(keys('ok'), json({ cöunt: 1 }), 400, 'INVALID_BODY') },
  {
    name: '__proto__ field',
    ...post(keys('ok'), '{"__proto__":{"count":1}}', 400, 'INVALID_BODY'),
  },
  { name: 'array body', ...post(keys('ok'), '[1]', 400, 'INVALID_BODY') },
  { name: 'bare JSON number', ...post(keys('ok'), '2', 400, 'MALFORMED_JSON') },
  { name: 'truncated JSON', ...post(keys('ok'), '{"count":', 400, 'MALFORMED_JSON') },
  { name: 'no body at all', ...post(keys('ok'), undefined, 400, 'INVALID_BODY') },
  {
    name: 'text/plain body',
    ...post(keys('ok'), one, 415, 'UNSUPPORTED_MEDIA_TYPE', 'text/plain'),
  },
  {
    name: 'form body',
    ...post(
      keys('ok'),
      'count=1',
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'application/x-www-form-urlencoded',
    ),
  },
  {
    name: 'UTF-16 JSON',
    ...post(keys('ok'), one, 415, 'UNSUPPORTED_MEDIA_TYPE', 'application/json; charset=utf-16'),
  },
  {
    name: 'a 1 MiB body',
    ...post(keys('ok'), json({ count: 1, pad: 'x'.repeat(1 << 20) }), 413, 'PAYLOAD_TOO_LARGE'),
  },
  // PUT on …/keys is a running pod's count (admin; test/server/moves.test.ts).
  {
    name: 'PUT on a heartbeat',
    method: 'PUT',
    path: '/v1/pods/ok/heartbeat',
    body: one,
    type: 'application/json',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'PATCH on keys',
    method: 'PATCH',
    path: keys('ok'),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { name: 'POST on assignments', ...post('/v1/assignments', one, 405, 'METHOD_NOT_ALLOWED') },
  { name: 'unknown route', method: 'GET', path: '/v1/nothing', status: 404, code: 'NOT_FOUND' },
  {
    name: 'GET with a bad pod name',
    method: 'GET',
    path: keys('BAD'),
    status: 400,
    code: 'INVALID_POD_NAME',
  },
  {
    name: 'DELETE with a bad pod name',
    method: 'DELETE',
    path: keys('BAD'),
    status: 400,
    code: 'INVALID_POD_NAME',
  },
  {
    name: 'page limit 0',
    method: 'GET',
    path: '/assignments?limit=0',
    status: 400,
    code: 'INVALID_QUERY',
  },
  {
    name: 'repeated page query',
    method: 'GET',
    path: '/assignments?q=a&q=b',
    status: 400,
    code: 'INVALID_QUERY',
  },
  {
    name: 'bad namespace',
    ...post('/v1/namespaces/Not_NS/pods/ok/keys', one, 400, 'INVALID_NAMESPACE'),
  },
  {
    name: 'namespace of 64 characters',
    ...post(`/v1/namespaces/${'n'.repeat(64)}/pods/ok/keys`, one, 400, 'INVALID_NAMESPACE'),
  },
  {
    name: 'bad pod in a namespace',
    ...post('/v1/namespaces/vals/pods/BAD/keys', one, 400, 'INVALID_POD_NAME'),
  },
  {
    name: 'heartbeat with a bad pubkey',
    ...post('/v1/pods/ok/heartbeat', json({ pubkeys: ['0x12'] }), 400, 'INVALID_BODY'),
  },
  {
    name: 'heartbeat with an unknown field',
    ...post('/v1/pods/ok/heartbeat', json({ pubkeys: [], all: true }), 400, 'INVALID_BODY'),
  },
  {
    name: 'heartbeat that is not JSON',
    ...post('/v1/pods/ok/heartbeat', '{"pubkeys":', 400, 'MALFORMED_JSON'),
  },
  {
    name: 'GET on heartbeat',
    method: 'GET',
    path: '/v1/pods/ok/heartbeat',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    name: 'retire a malformed pubkey',
    ...post('/v1/keys/0x1234/retire', '{}', 400, 'INVALID_PUBKEY'),
  },
  {
    name: 'retire an unknown key',
    ...post(`/v1/keys/0x${'ab'.repeat(48)}/retire`, '{}', 404, 'KEY_NOT_FOUND'),
  },
  {
    name: 'retire with an unknown field',
    ...post(`/v1/keys/0x${'ab'.repeat(48)}/retire`, json({ why: 'x' }), 400, 'INVALID_BODY'),
  },
  {
    name: 'slashing protection that is not EIP-3076',
    ...post('/v1/pods/ok/slashing-protection', json({ data: [] }), 400, 'INVALID_INTERCHANGE'),
  },
  {
    name: 'events limit beyond 1000',
    method: 'GET',
    path: '/v1/events?limit=5000',
    status: 400,
    code: 'INVALID_QUERY',
  },
  {
    name: 'a webhook body that is not a review',
    ...post('/v1/webhooks/pod-deletion', json({ kind: 'Pod' }), 400, 'INVALID_REVIEW'),
  },
  {
    name: 'unknown deposits filter',
    method: 'GET',
    path: '/v1/deposits?owner=x',
    status: 400,
    code: 'INVALID_QUERY',
  },
  {
    name: 'bad deposits state',
    method: 'GET',
    path: '/v1/deposits?state=gone',
    status: 400,
    code: 'INVALID_QUERY',
  },
  {
    name: 'bad deposits pod',
    method: 'GET',
    path: '/v1/deposits?pod=A_B',
    status: 400,
    code: 'INVALID_POD_NAME',
  },
  // KEK rotation (admin route; these test servers ask for no token)
  {
    name: 'KEK rotation without newKekFile',
    ...post('/v1/admin/kek-rotation', '{}', 400, 'INVALID_BODY'),
  },
  {
    name: 'KEK rotation with an unknown field',
    ...post('/v1/admin/kek-rotation', json({ newKekFile: '/x', now: true }), 400, 'INVALID_BODY'),
  },
  {
    name: 'KEK rotation to a file that does not exist',
    ...post(
      '/v1/admin/kek-rotation',
      json({ newKekFile: '/nonexistent/kek' }),
      400,
      'INVALID_BODY',
    ),
  },
  {
    name: 'KEK rotation to a file that is not a KEK',
    ...post('/v1/admin/kek-rotation', json({ newKekFile: NOT_A_KEK }), 400, 'INVALID_BODY'),
  },
  {
    name: 'GET on KEK rotation',
    method: 'GET',
    path: '/v1/admin/kek-rotation',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { name: 'POST on status', ...post('/v1/status', '{}', 405, 'METHOD_NOT_ALLOWED') },
  { name: 'POST on openapi.json', ...post('/openapi.json', '{}', 405, 'METHOD_NOT_ALLOWED') },
];

describe('bad input', () => {
  it('has at least 25 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES)('$name: $status $code, store unchanged', async (c) => {
    const { url, store } = await startTestServer();
    await http(url, 'POST', keys('ok'), { count: 2 });
    await http(url, 'POST', keys('gone'), { count: 1 });
    await http(url, 'DELETE', keys('gone'));
    const before = await store.rawEntries();

    const res = await fetch(`${url}${c.path}`, {
      method: c.method,
      ...(c.body === undefined ? {} : { body: c.body }),
      headers: c.type === undefined ? {} : { 'content-type': c.type },
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(c.status);
    expect(body.error.code).toBe(c.code);
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(await store.rawEntries()).toEqual(before);
  });
});
