// Adversarial review of issue 16: the old pod's heartbeat names a key it reported deleted (its
// VC lied, or a second agent on the pod imported it again: README "Limits"). The server has
// the evidence in hand (the pod's own agent says its VC runs the key), yet the key stays the
// destination's and its secret goes on to the destination's agent.
import { describe, expect, it } from 'vitest';
import { http } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import {
  admin,
  allocate,
  as,
  podAuthServer,
  ROOT,
  reportDeleted,
} from '../support/pod-auth-server.js';

describe('a heartbeat that contradicts a removal proof', () => {
  it('the old pod says its VC still runs a key it reported deleted: the key is not left to the new pod unflagged', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 2);
    await allocate(s.url, 'b', 1);
    const move = await http<{ keys: string[] }>(
      s.url,
      'POST',
      '/v1/moves',
      { from: 'a', to: 'b', count: 1 },
      admin,
    );
    const x = move.body.keys[0] ?? '';
    const report = await reportDeleted(s.url, 'a', x, as('a'));
    expect(report.body.keys[0]?.outcome).toBe('moved');
    // a's agent, one pass later: its VC's GET /eth/v1/keystores still lists x.
    const beat = await http<Record<string, unknown>>(
      s.url,
      'POST',
      '/v1/pods/a/heartbeat',
      { pubkeys: [a[0], x] },
      as('a'),
    );
    expect(beat.status).toBe(200);
    console.log('heartbeat answer', JSON.stringify(beat.body));
    const record = await s.store.getKey(x);
    console.log('x after', record?.state, record?.pod);
    const status = await http<Record<string, unknown>>(
      s.url,
      'GET',
      '/v1/status',
      undefined,
      admin,
    );
    console.log('status', JSON.stringify(status.body).slice(0, 600));
    // b's agent asks for its assignment: is x's secret still handed to b?
    const viewB = await http<{ keys: Array<{ pubkey: string; secretKey?: string }> }>(
      s.url,
      'POST',
      '/v1/pods/b/assignment',
      { have: [] },
      as('b'),
    );
    const handed = viewB.body.keys.filter((k) => k.secretKey !== undefined).map((k) => k.pubkey);
    // Expected: a key its old pod's VC still runs (its own agent said so, after the "proof")
    // is no longer handed to another pod: conflict (DESIGN "A key seen held by two pods").
    expect(handed).not.toContain(x);
    // (Added with the fix) a conflict of both pods, out of b's list, and the alert raised.
    expect(beat.body.conflicts).toEqual([x]);
    expect(record).toMatchObject({ state: 'conflict', conflictPods: ['b', 'a'] });
    expect((await s.store.getPod('b'))?.keys).not.toContain(x);
    const metrics = await http<string>(s.url, 'GET', '/metrics', undefined, admin);
    expect(metrics.body).toMatch(/^pkm_conflicts_total 1$/m);
  });

  it('a key freed with proof (a smaller count) that its old pod says it runs again is a conflict too; past the reuse delay it is a claim like any other', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 2);
    const x = a[1] ?? '';
    const put = await http(s.url, 'PUT', '/v1/pods/a/keys', { count: 1 }, admin);
    expect(put.status).toBe(200);
    const report = await reportDeleted(s.url, 'a', x, as('a'));
    expect(report.body.keys[0]?.outcome).toBe('freed');
    const beat = await http<{ conflicts: string[] }>(
      s.url,
      'POST',
      '/v1/pods/a/heartbeat',
      { pubkeys: [a[0], x] },
      as('a'),
    );
    expect(beat.body.conflicts).toEqual([x]);
    expect(await s.store.getKey(x)).toMatchObject({ state: 'conflict', conflictPods: ['a'] });
    // Another server run: the same, past the reuse delay, is an unproven claim (refused).
    const t = await podAuthServer();
    const a2 = await allocate(t.url, 'a', 2);
    const y = a2[1] ?? '';
    await http(t.url, 'PUT', '/v1/pods/a/keys', { count: 1 }, admin);
    await http(
      t.url,
      'POST',
      '/v1/pods/a/removals',
      {
        keys: [{ pubkey: y, status: 'deleted' }],
        slashing_protection: JSON.stringify(interchangeFor(ROOT, [y])),
      },
      as('a'),
    );
    t.clock.advance(24 * 3600 * 1000);
    const late = await http<{ conflicts: string[]; refused: string[] }>(
      t.url,
      'POST',
      '/v1/pods/a/heartbeat',
      { pubkeys: [a2[0], y] },
      as('a'),
    );
    expect([late.body.conflicts, late.body.refused]).toEqual([[], [y]]);
    expect(await t.store.getKey(y)).toMatchObject({ state: 'free' });
  });
});
