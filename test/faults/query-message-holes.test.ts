// Found by an adversarial review of issue 13 (query parameters as zod schemas, api/queries.ts): the refusal texts are
// "part of the contract" (queries.ts), and before the change every refused ?since= / ?limit= of
// GET /v1/events said "<name> must be a whole number up to <max>". A digit string long enough to
// read as Infinity (over ~309 digits) now gets zod's default text instead: the inner
// z.number() of `whole()` carries no error of its own, and it refuses Infinity before .int()
// and .max() (which do carry the text) are reached.
import { describe, expect, it } from 'vitest';
import { http, startTestServer } from '../helpers.js';

const huge = '9'.repeat(400);

describe('break: GET /v1/events refuses every bad number with the same text as before', () => {
  it('Q1 ?since= of 400 digits', async () => {
    const { url } = await startTestServer();
    const res = await http(url, 'GET', `/v1/events?since=${huge}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toEqual({
      code: 'INVALID_QUERY',
      message: 'since must be a whole number up to 9007199254740991',
    });
  });

  it('Q2 ?limit= of 400 digits', async () => {
    const { url } = await startTestServer();
    const res = await http(url, 'GET', `/v1/events?limit=${huge}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toEqual({
      code: 'INVALID_QUERY',
      message: 'limit must be a whole number up to 1000',
    });
  });
});
