// The query schemas of api/queries.ts: the forms each route takes, the refusals with the codes and
// texts the routes always sent, and the document's parameters generated from the same schemas.
import { describe, expect, it } from 'vitest';
import { queryParameters } from '../../src/api/parameters.js';
import { ROUTES } from '../../src/api/paths.js';
import {
  DepositsQuery,
  EventsQuery,
  PageQuery,
  parseQuery,
  QUERIES,
} from '../../src/api/queries.js';
import { PkmError } from '../../src/errors.js';
import { openApiDocument } from '../../src/server/openapi.js';

/** The code and message a query is refused with. */
function refusal(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (err) {
    if (err instanceof PkmError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('the query was accepted');
}

describe('GET /assignments ?q, ?after, ?limit', () => {
  const parse = (query: object) => parseQuery(PageQuery, query);

  it('takes the defaults, one string each, and a limit read as a number', () => {
    expect(parse({})).toEqual({ q: '', after: '', limit: 500 });
    expect(parse({ q: 'v-0', after: 'v-9', limit: '10000', other: 'x' })).toEqual({
      q: 'v-0',
      after: 'v-9',
      limit: 10000,
    });
    expect(parse({ limit: '' }).limit).toBe(500);
    expect(parse({ limit: '1' }).limit).toBe(1);
  });

  it.each([
    [{ q: ['a', 'b'] }, 'query parameter q must be one string of at most 200 characters'],
    [{ q: 'x'.repeat(201) }, 'query parameter q must be one string of at most 200 characters'],
    [
      { after: 'x'.repeat(254) },
      'query parameter after must be one string of at most 253 characters',
    ],
    [{ limit: '1234567' }, 'query parameter limit must be one string of at most 6 characters'],
    [{ limit: ['1', '2'] }, 'query parameter limit must be one string of at most 6 characters'],
    [{ limit: '0' }, 'query parameter limit must be from 1 to 10000'],
    [{ limit: '10001' }, 'query parameter limit must be from 1 to 10000'],
    [{ limit: 'many' }, 'query parameter limit must be from 1 to 10000'],
    [{ limit: '1.5' }, 'query parameter limit must be from 1 to 10000'],
    // The first field in order is the one named.
    [
      { q: ['a', 'b'], limit: '0' },
      'query parameter q must be one string of at most 200 characters',
    ],
  ])('refuses %j', (query, message) => {
    expect(refusal(() => parse(query))).toEqual({ code: 'INVALID_QUERY', message });
  });
});

describe('GET /v1/events ?since, ?limit', () => {
  const parse = (query: object) => parseQuery(EventsQuery, query);

  it('takes the defaults and whole numbers', () => {
    expect(parse({})).toEqual({ since: 0, limit: 100 });
    expect(parse({ since: '42', limit: '1000' })).toEqual({ since: 42, limit: 1000 });
    expect(parse({ limit: '0' }).limit).toBe(0);
  });

  it.each([
    [{ since: '-1' }, 'since must be a whole number up to 9007199254740991'],
    [{ since: '99999999999999999999' }, 'since must be a whole number up to 9007199254740991'],
    [{ since: ['1', '2'] }, 'since must be a whole number up to 9007199254740991'],
    [{ limit: '1001' }, 'limit must be a whole number up to 1000'],
    [{ limit: '' }, 'limit must be a whole number up to 1000'],
    [{ limit: '1e3' }, 'limit must be a whole number up to 1000'],
  ])('refuses %j', (query, message) => {
    expect(refusal(() => parse(query))).toEqual({ code: 'INVALID_QUERY', message });
  });
});

describe('GET /v1/deposits ?pod, ?state', () => {
  const parse = (query: object) => parseQuery(DepositsQuery, query);
  const states =
    'state is one of free, allocated, cooling, retired, depositing, deposit-failed, conflict, reported';

  it('takes either filter, or none', () => {
    expect(parse({})).toEqual({});
    expect(parse({ pod: 'v-0', state: 'free' })).toEqual({ pod: 'v-0', state: 'free' });
  });

  it.each([
    [{ owner: 'x' }, 'INVALID_QUERY', 'unknown query parameter owner; use pod or state'],
    // An unknown parameter is named before the others are read.
    [
      { state: 'gone', pod: 'A_B', owner: 'x', page: '2' },
      'INVALID_QUERY',
      'unknown query parameter owner, page; use pod or state',
    ],
    [{ state: 'gone' }, 'INVALID_QUERY', states],
    [{ state: ['free', 'free'] }, 'INVALID_QUERY', states],
    [{ state: 'gone', pod: 'A_B' }, 'INVALID_QUERY', states],
    [
      { pod: 'A_B' },
      'INVALID_POD_NAME',
      `pod name "A_B" is not a Kubernetes pod name (RFC 1123 subdomain: lowercase a-z, 0-9, '-' and '.', at most 253 characters)`,
    ],
    [
      { pod: ['a', 'b'] },
      'INVALID_POD_NAME',
      `pod name none is not a Kubernetes pod name (RFC 1123 subdomain: lowercase a-z, 0-9, '-' and '.', at most 253 characters)`,
    ],
  ])('refuses %j', (query, code, message) => {
    expect(refusal(() => parse(query))).toEqual({ code, message });
  });
});

describe("the document's query parameters", () => {
  const paths = (openApiDocument('test') as { paths: Record<string, { get: object }> }).paths;

  it.each(Object.entries(QUERIES))('of %s are the generated ones', (route, schema) => {
    expect(paths[route]?.get).toMatchObject({ parameters: queryParameters(schema) });
  });

  it('document integers as integers, with their bounds, and states by reference', () => {
    expect(queryParameters(QUERIES[ROUTES.assignmentsPage])).toContainEqual({
      name: 'limit',
      in: 'query',
      required: false,
      schema: { type: 'integer', minimum: 1, maximum: 10000, default: 500 },
    });
    expect(queryParameters(QUERIES[ROUTES.events])).toMatchObject([
      { name: 'since', schema: { type: 'integer', minimum: 0 } },
      { name: 'limit', schema: { type: 'integer', maximum: 1000, default: 100 } },
    ]);
    expect(queryParameters(QUERIES[ROUTES.deposits])).toMatchObject([
      { name: 'state', schema: { $ref: '#/components/schemas/KeyState' } },
      { name: 'pod', schema: { type: 'string', maxLength: 253 } },
    ]);
  });
});
