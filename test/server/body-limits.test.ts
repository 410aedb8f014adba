// Each route has its own body limit; a body over it is refused with 413, naming that limit.
import { describe, expect, it } from 'vitest';
import { http, startTestServer } from '../helpers.js';

describe('body limits', () => {
  it('name the limit of the route the body was sent to, and change nothing', async () => {
    const { url, store } = await startTestServer();
    const before = await store.rawEntries();
    const cases: Array<[string, number, string]> = [
      ['/v1/pods/a/keys', 20_000, '16384 bytes'],
      ['/v1/pods/a/heartbeat', 1_100_000, '1048576 bytes'],
    ];
    for (const [path, size, limit] of cases) {
      const res = await http<{ error: { code: string; message: string } }>(url, 'POST', path, {
        pad: 'x'.repeat(size),
      });
      expect([res.status, res.body.error.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect(res.body.error.message).toContain(limit);
    }
    expect(await store.rawEntries()).toEqual(before);
  });
});
