// The allocation's own JSON reader and writer (src/server/json-io.ts) answer as express.json and
// res.json did: the same bodies are accepted and refused with the same codes, and what the
// reader leaves to express.json (chunked, compressed, another spelling of the type) still works.
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type AllocationBody, http, startTestServer } from '../helpers.js';
import { rememberSecret } from '../support/secret-ledger.js';

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

/** A POST with exactly these headers and body chunks (no Content-Length unless given). */
function rawPost(
  base: string,
  path: string,
  headers: Record<string, string>,
  chunks: readonly (string | Buffer)[],
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      { host: url.hostname, port: url.port, method: 'POST', path, headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          for (const key of safeKeys(text)) rememberSecret(key);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
        });
      },
    );
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** The secret keys an answer carries, noted for the log scan (test/support/secret-ledger.ts). */
function safeKeys(text: string): string[] {
  return [...text.matchAll(/"secretKey":"(0x[0-9a-f]{64})"/g)].map((m) => m[1] ?? '');
}

const body = (count: number) => JSON.stringify({ count });
const code = (answer: RawAnswer) =>
  (JSON.parse(answer.text) as { error?: { code: string } }).error?.code;

describe('the allocation route reads and writes JSON as express did', () => {
  it('answers a plain request with the keys, its exact length, the JSON type and no-store', async () => {
    const { url } = await startTestServer();
    const text = body(2);
    const answer = await rawPost(
      url,
      '/v1/pods/plain/keys',
      { 'content-type': 'application/json', 'content-length': String(text.length) },
      [text],
    );
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.text));
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.headers['x-request-id']).toMatch(/^[\w.-]+$/);
    const parsed = JSON.parse(answer.text) as AllocationBody;
    expect(parsed.pod).toBe('plain');
    expect(parsed.keys).toHaveLength(2);
  });

  it('reads a body split over several packets, with whitespace and a byte order mark first', async () => {
    const { url } = await startTestServer();
    const text = `\ufeff \n\t{"count":` + ' 3}';
    const length = Buffer.byteLength(text);
    const bytes = Buffer.from(text);
    const answer = await rawPost(
      url,
      '/v1/pods/split/keys',
      { 'content-type': 'application/json; charset=utf-8', 'content-length': String(length) },
      [bytes.subarray(0, 5), bytes.subarray(5)],
    );
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.text) as AllocationBody).keys).toHaveLength(3);
  });

  it('refuses what is not a JSON object or array as MALFORMED_JSON, and changes nothing', async () => {
    const { url, store } = await startTestServer();
    const before = await store.rawEntries();
    for (const text of ['   ', '2', '"count"', '{"count":', 'null', '{"count":1}x']) {
      const res = await http(url, 'POST', '/v1/pods/bad/keys', text);
      expect([text, res.status, res.body.error.code]).toEqual([text, 400, 'MALFORMED_JSON']);
    }
    // A byte order mark alone is an empty body: {} to body-parser, so not a count.
    const bom = await http(url, 'POST', '/v1/pods/bad/keys', '\ufeff');
    expect([bom.status, bom.body.error.code]).toEqual([400, 'INVALID_BODY']);
    expect(await store.rawEntries()).toEqual(before);
  });

  it('leaves chunked, compressed and otherwise spelled bodies to express.json, which reads them', async () => {
    const { url } = await startTestServer();
    const chunked = await rawPost(
      url,
      '/v1/pods/chunked/keys',
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      ['{"count"', ':1}'],
    );
    expect([chunked.status, chunked.text.includes('"pod":"chunked"')]).toEqual([200, true]);
    const zipped = gzipSync(body(1));
    const gzip = await rawPost(
      url,
      '/v1/pods/gzip/keys',
      {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': String(zipped.length),
      },
      [zipped],
    );
    expect([gzip.status, gzip.text.includes('"pod":"gzip"')]).toEqual([200, true]);
    const upper = await http<AllocationBody>(url, 'POST', '/v1/pods/upper/keys', body(1), {
      'content-type': 'application/json; charset=UTF-8',
    });
    expect([upper.status, upper.body.keys.length]).toEqual([200, 1]);
  });

  it('refuses a body over the limit before reading it, naming the limit', async () => {
    const { url, store } = await startTestServer();
    const before = await store.rawEntries();
    const text = JSON.stringify({ count: 1, pad: 'x'.repeat(16 * 1024) });
    const answer = await rawPost(
      url,
      '/v1/pods/big/keys',
      { 'content-type': 'application/json', 'content-length': String(text.length) },
      [text],
    );
    expect([answer.status, code(answer)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(answer.text).toContain('16384 bytes');
    expect(await store.rawEntries()).toEqual(before);
  });

  it('refuses a wrong body as before: unknown fields, a wrong count, a refused type', async () => {
    const { url } = await startTestServer();
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['{"count":1,"more":1}', {}, 400, 'INVALID_BODY'],
      ['{"count":0}', {}, 400, 'COUNT_OUT_OF_RANGE'],
      ['[]', {}, 400, 'INVALID_BODY'],
      [body(1), { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ];
    for (const [text, headers, status, expected] of cases) {
      const res = await http(url, 'POST', '/v1/pods/wrong/keys', text, headers);
      expect([text, res.status, res.body.error.code]).toEqual([text, status, expected]);
    }
  });
});
