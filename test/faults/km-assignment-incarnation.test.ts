// Adversarial review of issue 16: POST …/assignment hands out secrets without the pod-incarnation
// (UID) check that POST …/keys makes. A pod of another UID than the recorded holder's is a new
// incarnation whose predecessor went without a deletion the server saw (allocator.ts
// allocateIn: "its keys are fenced, never handed to the newcomer"). The assignment route must
// not be a way round that rule: the old incarnation may still run on a cut-off node.
import { describe, expect, it } from 'vitest';
import { type AllocationBody, http } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import { admin, as, podAuthServer, ROOT, reportDeleted } from '../support/pod-auth-server.js';

interface Assignment {
  keys: Array<{ pubkey: string; secretKey?: string; leaving?: unknown }>;
}

describe('assignment and pod incarnations', () => {
  it('POST …/keys from a new incarnation fences the old one’s keys (the reference behaviour)', async () => {
    const s = await podAuthServer();
    const first = await http<AllocationBody>(
      s.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
      as('a', 'u1'),
    );
    expect(first.status).toBe(200);
    const old = first.body.keys.map((k) => k.pubkey);
    const again = await http<AllocationBody>(
      s.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
      as('a', 'u2'),
    );
    expect(again.status).toBe(200);
    expect(again.body.keys.map((k) => k.pubkey).filter((pk) => old.includes(pk))).toEqual([]);
  });

  it('POST …/assignment from a new incarnation gets no secret of the old one’s keys', async () => {
    const s = await podAuthServer();
    const first = await http<AllocationBody>(
      s.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
      as('a', 'u1'),
    );
    const old = first.body.keys.map((k) => k.pubkey);
    // The new incarnation's agent: a heartbeat (its empty VC runs nothing), then its assignment.
    const beat = await http(s.url, 'POST', '/v1/pods/a/heartbeat', { pubkeys: [] }, as('a', 'u2'));
    expect(beat.status).toBe(200);
    const view = await http<Assignment>(
      s.url,
      'POST',
      '/v1/pods/a/assignment',
      { have: [] },
      as('a', 'u2'),
    );
    const leaked = (view.body.keys ?? [])
      .filter((k) => k.secretKey !== undefined)
      .map((k) => k.pubkey);
    // Expected: none of the keys u1 may still run (fenced, as POST …/keys does it).
    expect(leaked.filter((pk) => old.includes(pk))).toEqual([]);
  });

  it('a heartbeat of the new incarnation naming the old one’s keys (a VC data dir kept) does not make them its own', async () => {
    const s = await podAuthServer();
    const first = await http<AllocationBody>(
      s.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
      as('a', 'u1'),
    );
    const old = first.body.keys.map((k) => k.pubkey);
    const beat = await http(s.url, 'POST', '/v1/pods/a/heartbeat', { pubkeys: old }, as('a', 'u2'));
    expect(beat.status).toBe(200);
    const view = await http<Assignment>(
      s.url,
      'POST',
      '/v1/pods/a/assignment',
      { have: [] },
      as('a', 'u2'),
    );
    expect(view.status).toBe(200);
    expect(view.body.keys.map((k) => k.pubkey).filter((pk) => old.includes(pk))).toEqual([]);
    // Fenced, as POST …/keys leaves them: cooling under a, out of everyone's reach.
    for (const pk of old)
      expect(await s.store.getKey(pk)).toMatchObject({ state: 'cooling', stop: 'fenced' });
    expect((await s.store.getPod('a'))?.uid).toBe('u2');
  });

  it('after the fence the name is the new incarnation’s: a key moved to it lands and is handed out', async () => {
    const s = await podAuthServer();
    await http(s.url, 'POST', '/v1/pods/a/keys', { count: 1 }, as('a', 'u1'));
    await http(s.url, 'POST', '/v1/pods/b/keys', { count: 2 }, as('b', 'ub'));
    await http(s.url, 'POST', '/v1/pods/a/assignment', { have: [] }, as('a', 'u2'));
    // The move is marked after the fence (a move marked before it would free the key instead:
    // removal.ts, a destination released after the move was marked).
    s.clock.advance(1000);
    const move = await http<{ keys: string[] }>(
      s.url,
      'POST',
      '/v1/moves',
      { from: 'b', to: 'a', count: 1 },
      admin,
    );
    const x = move.body.keys[0] ?? '';
    const report = await reportDeleted(s.url, 'b', x, as('b', 'ub'));
    expect(report.body.keys[0]?.outcome).toBe('moved');
    const view = await http<Assignment>(
      s.url,
      'POST',
      '/v1/pods/a/assignment',
      { have: [] },
      as('a', 'u2'),
    );
    expect(view.body.keys.filter((k) => k.secretKey !== undefined).map((k) => k.pubkey)).toEqual([
      x,
    ]);
    expect(await s.store.getKey(x)).toMatchObject({ state: 'allocated', pod: 'a' });
  });

  it('a removal report from another incarnation than the holder’s proves nothing: refused, nothing changed', async () => {
    const s = await podAuthServer();
    await http(s.url, 'POST', '/v1/pods/a/keys', { count: 2 }, as('a', 'u1'));
    await http(s.url, 'POST', '/v1/pods/b/keys', { count: 1 }, as('b', 'ub'));
    const move = await http<{ keys: string[] }>(
      s.url,
      'POST',
      '/v1/moves',
      { from: 'a', to: 'b', count: 1 },
      admin,
    );
    const x = move.body.keys[0] ?? '';
    const before = await s.store.getKey(x);
    const report = await http<{ error?: { code: string } }>(
      s.url,
      'POST',
      '/v1/pods/a/removals',
      {
        keys: [{ pubkey: x, status: 'deleted' }],
        slashing_protection: JSON.stringify(interchangeFor(ROOT, [x])),
      },
      as('a', 'u2'),
    );
    expect([report.status, report.body.error?.code]).toEqual([409, 'OTHER_INCARNATION']);
    expect(await s.store.getKey(x)).toEqual(before);
  });
});
