import { describe, expect, it } from 'vitest';
import { fenceAt } from '../../src/allocation/interchange.js';
import { type AllocationBody, http, MINUTE } from '../helpers.js';
import { admin, GENESIS, ic, PATH, type Statuses, server } from '../support/keymanager-fixture.js';
import { loadKeymanagerSpec, problems } from '../support/keymanager-spec.js';

describe('break: the protection a deleted or retired key leaves with', () => {
  it('a key retired from under its pod: not_active protection is no lower than what a hand-off would fence', async () => {
    const s = await server();
    const spec = await loadKeymanagerSpec();
    const got = await http<AllocationBody>(s.url, 'POST', '/v1/pods/p1/keys', { count: 1 }, admin);
    const k = got.body.keys[0]?.pubkey ?? '';
    const up = await http(
      s.url,
      'POST',
      '/v1/pods/p1/slashing-protection',
      ic([[k, 100, 5]]),
      admin,
    );
    expect(up.status).toBe(200);
    s.clock.advance(60 * MINUTE); // the pod keeps validating meanwhile
    const ret = await http(s.url, 'POST', `/v1/keys/${k}/retire`, {}, admin);
    expect(ret.status).toBe(200);
    const del = await http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: [k] }, admin);
    expect(problems(spec.answer(PATH, 'delete', del.status), del.body)).toEqual([]);
    expect(del.body.data[0]?.status).toBe('not_active');
    const out = JSON.parse(del.body.slashing_protection);
    const fence = fenceAt(s.clock.ms, GENESIS);
    expect(Number(out.data[0].signed_blocks[0].slot)).toBeGreaterThanOrEqual(
      fence.lastBlockSlot ?? 0,
    );
  });
});
