// The live-move routes over HTTP (issue 16): who may call them, what bad input gets (a code, and
// no change), and a move carried out by the two pods' reports as their agents would send them.
import { describe, expect, it } from 'vitest';
import { http } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import { admin, allocate, as, podAuthServer, ROOT } from '../support/pod-auth-server.js';

interface Assignment {
  keys: Array<{
    pubkey: string;
    leaving?: { to?: string };
    secretKey?: string;
    slashingProtection?: unknown;
    settings?: Record<string, string>;
  }>;
}

describe('PUT /v1/pods/{pod}/keys', () => {
  it('is an admin route; it marks the keys handed out last leaving, and bad input changes nothing', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 3);
    expect((await http(s.url, 'PUT', '/v1/pods/a/keys', { count: 1 }, as('a'))).body).toMatchObject(
      { error: { code: 'FORBIDDEN' } },
    );
    expect((await http(s.url, 'PUT', '/v1/pods/a/keys', { count: 1 })).status).toBe(401);
    for (const [body, code] of [
      [{ count: 65 }, 'COUNT_OUT_OF_RANGE'],
      [{ count: 'two' }, 'INVALID_BODY'],
      [{ count: 1, extra: true }, 'INVALID_BODY'],
    ] as const) {
      const res = await http(s.url, 'PUT', '/v1/pods/a/keys', body, admin);
      expect([body, res.body.error.code]).toEqual([body, code]);
    }
    expect(await s.store.getKey(a[2] ?? '')).not.toHaveProperty('leaving');
    const res = await http(s.url, 'PUT', '/v1/pods/a/keys', { count: 1 }, admin);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ pod: 'a', keys: [a[0]], leaving: a.slice(1) });
    // The namespaced form too.
    const ns = await http(s.url, 'PUT', '/v1/namespaces/default/pods/a/keys', { count: 1 }, admin);
    expect(ns.status).toBe(200);
  });
});

describe('a move through the agents’ routes', () => {
  it('A’s report of the VC’s delete hands the keys to B; B’s assignment then carries their secrets, history and settings', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 3);
    const b = await allocate(s.url, 'b', 1);
    const move = await http<{ keys: string[] }>(
      s.url,
      'POST',
      '/v1/moves',
      { from: 'a', to: 'b', count: 2 },
      admin,
    );
    expect(move.status).toBe(200);
    expect(move.body).toEqual({ from: 'a', to: 'b', keys: a.slice(1) });

    // A's agent sees them leaving (no secret for what its VC has), B's sees nothing yet.
    const viewA = await http<Assignment>(
      s.url,
      'POST',
      '/v1/pods/a/assignment',
      { have: a },
      as('a'),
    );
    expect(viewA.headers.get('cache-control')).toBe('no-store');
    expect(viewA.body.keys.map((k) => [k.leaving, k.secretKey])).toEqual([
      [undefined, undefined],
      [{ to: 'b' }, undefined],
      [{ to: 'b' }, undefined],
    ]);
    expect(
      (await http<Assignment>(s.url, 'POST', '/v1/pods/b/assignment', { have: b }, as('b'))).body
        .keys,
    ).toHaveLength(1);
    // Another pod's token may not read or report for a.
    expect(
      (await http(s.url, 'POST', '/v1/pods/a/assignment', { have: [] }, as('b'))).body.error.code,
    ).toBe('FORBIDDEN');

    // Bad reports are refused and change nothing.
    const vcAnswer = JSON.stringify(interchangeFor(ROOT, move.body.keys));
    for (const [body, code] of [
      [{ keys: [], slashing_protection: vcAnswer }, 'INVALID_BODY'],
      [
        {
          keys: [
            { pubkey: a[1], status: 'deleted' },
            { pubkey: a[1]?.toUpperCase().replace('0X', '0x'), status: 'deleted' },
          ],
          slashing_protection: vcAnswer,
        },
        'INVALID_BODY',
      ],
      [{ keys: [{ pubkey: a[1], status: 'gone' }], slashing_protection: vcAnswer }, 'INVALID_BODY'],
      [
        { keys: [{ pubkey: a[1], status: 'deleted' }], slashing_protection: '{' },
        'INVALID_INTERCHANGE',
      ],
      [
        {
          keys: [{ pubkey: a[1], status: 'deleted', settings: { graffiti: 'x'.repeat(33) } }],
          slashing_protection: vcAnswer,
        },
        'INVALID_BODY',
      ],
      [
        {
          keys: [{ pubkey: a[1], status: 'deleted' }],
          slashing_protection: JSON.stringify(interchangeFor(`0x${'cd'.repeat(32)}`, a)),
        },
        'INTERCHANGE_MISMATCH',
      ],
    ] as const) {
      const res = await http(s.url, 'POST', '/v1/pods/a/removals', body, as('a'));
      expect([body, res.body.error?.code]).toEqual([body, code]);
    }
    expect(await s.store.getKey(a[1] ?? '')).toMatchObject({ pod: 'a', leaving: { to: 'b' } });

    const report = await http<{ keys: unknown[] }>(
      s.url,
      'POST',
      '/v1/pods/a/removals',
      {
        keys: move.body.keys.map((pubkey) => ({
          pubkey,
          status: 'deleted',
          settings: { feeRecipient: `0x${'12'.repeat(20)}`, graffiti: 'moved by pkm' },
        })),
        slashing_protection: vcAnswer,
      },
      as('a'),
    );
    expect(report.status).toBe(200);
    expect(report.body).toEqual({
      pod: 'a',
      keys: move.body.keys.map((pubkey) => ({ pubkey, outcome: 'moved', to: 'b' })),
    });
    const viewB = await http<Assignment>(
      s.url,
      'POST',
      '/v1/pods/b/assignment',
      { have: b },
      as('b'),
    );
    const incoming = viewB.body.keys.filter((k) => k.secretKey !== undefined);
    expect(incoming.map((k) => k.pubkey)).toEqual(move.body.keys);
    expect(incoming[0]?.settings).toEqual({
      feeRecipient: `0x${'12'.repeat(20)}`,
      graffiti: 'moved by pkm',
    });
    expect(incoming[0]?.slashingProtection).toMatchObject({
      metadata: { genesis_validators_root: ROOT },
    });
    expect(
      (await http<{ pubkeys: string[] }>(s.url, 'GET', '/v1/pods/a/keys', undefined, as('a'))).body
        .pubkeys,
    ).toEqual([a[0]]);
  });

  it('moves and rebalances are admin routes; bad names, counts and selectors change nothing', async () => {
    const s = await podAuthServer();
    await allocate(s.url, 'a', 2);
    expect(
      (await http(s.url, 'POST', '/v1/moves', { from: 'a', to: 'b', count: 1 }, as('a'))).body.error
        .code,
    ).toBe('FORBIDDEN');
    for (const [body, code] of [
      [{ from: 'A', to: 'b', count: 1 }, 'INVALID_POD_NAME'],
      [{ from: 'a', to: 'Bad_ns/b', count: 1 }, 'INVALID_NAMESPACE'],
      [{ from: 'a', to: 'a', count: 1 }, 'INVALID_BODY'],
      [{ from: 'a', to: 'b', count: 3 }, 'COUNT_MISMATCH'],
      [{ from: 'a', to: 'b', count: 0 }, 'COUNT_OUT_OF_RANGE'],
      [{ from: 'a', to: 'b' }, 'INVALID_BODY'],
    ] as const) {
      const res = await http(s.url, 'POST', '/v1/moves', body, admin);
      expect([body, res.body.error.code]).toEqual([body, code]);
    }
    for (const [body, code] of [
      [{ selector: 'none-*' }, 'NO_PODS_SELECTED'],
      [{ selector: 'Bad' }, 'INVALID_BODY'],
      [{}, 'INVALID_BODY'],
    ] as const) {
      const res = await http(s.url, 'POST', '/v1/rebalance', body, admin);
      expect([body, res.body.error.code]).toEqual([body, code]);
    }
    const events = await http<{ events: Array<{ type: string }> }>(
      s.url,
      'GET',
      '/v1/events?since=0',
      undefined,
      admin,
    );
    expect(events.body.events.map((e) => e.type)).not.toContain('leave');
    const ok = await http<{ moves: unknown[] }>(
      s.url,
      'POST',
      '/v1/rebalance',
      { selector: 'a,b' },
      admin,
    );
    expect(ok.body.moves).toEqual([{ from: 'a', to: 'b', keys: [expect.any(String)] }]);
  });
});
