// Adversarial review of issue 16: hostile or malformed removal reports and assignment asks.
// Most of these held (they document what was tried); the body-size case shows an anonymous
// caller's 20 MB body is parsed before the token is looked at.
import { describe, expect, it } from 'vitest';
import { http } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import { admin, allocate, as, podAuthServer, ROOT } from '../support/pod-auth-server.js';

type Report = { keys: Array<{ pubkey: string; outcome: string; why?: string }> };
const report = (url: string, pod: string, keys: unknown[], ic: unknown, who = as(pod)) =>
  http<Report>(
    url,
    'POST',
    `/v1/pods/${pod}/removals`,
    { keys, slashing_protection: JSON.stringify(ic) },
    who,
  );

describe('hostile removal reports', () => {
  it('another pod’s key, a key not leaving, another pod’s token: nothing leaves, nothing is lowered', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 3);
    const b = await allocate(s.url, 'b', 2);
    await http(s.url, 'POST', '/v1/moves', { from: 'b', to: 'a', count: 1 }, admin);
    const bLeaving = b[1] ?? '';
    // b's leaving key, reported by a (with a's token): not a's.
    const r1 = await report(
      s.url,
      'a',
      [{ pubkey: bLeaving, status: 'deleted' }],
      interchangeFor(ROOT, [bLeaving], 99),
    );
    expect(r1.body.keys).toEqual([{ pubkey: bLeaving, outcome: 'not-held' }]);
    expect(await s.store.getKey(bLeaving)).toMatchObject({
      state: 'allocated',
      pod: 'b',
      leaving: { to: 'a' },
    });
    // b's removals with a's token.
    expect(
      (
        await report(
          s.url,
          'b',
          [{ pubkey: bLeaving, status: 'deleted' }],
          interchangeFor(ROOT, [bLeaving]),
          as('a'),
        )
      ).body,
    ).toMatchObject({ error: { code: 'FORBIDDEN' } });
    // a's own key, not leaving: kept.
    const r2 = await report(
      s.url,
      'a',
      [{ pubkey: a[0], status: 'deleted' }],
      interchangeFor(ROOT, [a[0] ?? '']),
    );
    expect(r2.body.keys[0]?.outcome).toBe('kept');
    expect(await s.store.getKey(a[0] ?? '')).toMatchObject({ state: 'allocated', pod: 'a' });
  });

  it('lower or empty history for a key with history on record: it cools, and the record is never lowered', async () => {
    const s = await podAuthServer();
    const a = await allocate(s.url, 'a', 3);
    await allocate(s.url, 'b', 1);
    // Upload history (slot 500, target 20) for a's keys.
    const high = {
      metadata: { interchange_format_version: '5', genesis_validators_root: ROOT },
      data: a.map((pubkey) => ({
        pubkey,
        signed_blocks: [{ slot: '500' }],
        signed_attestations: [{ source_epoch: '19', target_epoch: '20' }],
      })),
    };
    expect(
      (await http(s.url, 'POST', '/v1/pods/a/slashing-protection', high, as('a'))).status,
    ).toBe(200);
    const move = await http<{ keys: string[] }>(
      s.url,
      'POST',
      '/v1/moves',
      { from: 'a', to: 'b', count: 2 },
      admin,
    );
    const [x, y] = move.body.keys as [string, string];
    // x: lower history; y: duplicated, one full entry and one empty.
    const ic = {
      metadata: { interchange_format_version: '5', genesis_validators_root: ROOT },
      data: [
        {
          pubkey: x,
          signed_blocks: [{ slot: '64' }],
          signed_attestations: [{ source_epoch: '1', target_epoch: '2' }],
        },
        { pubkey: y, signed_blocks: [], signed_attestations: [] },
      ],
    };
    const r = await report(
      s.url,
      'a',
      [
        { pubkey: x, status: 'deleted' },
        { pubkey: y, status: 'deleted' },
      ],
      ic,
    );
    expect(r.body.keys.map((k) => k.outcome)).toEqual(['cooling', 'cooling']);
    expect((await s.store.getKey(x))?.protection).toMatchObject({
      lastBlockSlot: 500,
      lastTargetEpoch: 20,
    });
    // b got neither.
    const viewB = await http<{ keys: Array<{ pubkey: string }> }>(
      s.url,
      'POST',
      '/v1/pods/b/assignment',
      { have: [] },
      as('b'),
    );
    expect(viewB.body.keys.map((k) => k.pubkey)).not.toContain(x);
    expect(viewB.body.keys.map((k) => k.pubkey)).not.toContain(y);
  });

  it('an anonymous caller’s 19 MB report is refused before it is parsed', async () => {
    const s = await podAuthServer();
    await allocate(s.url, 'a', 1);
    const big = `{"keys":[],"slashing_protection":"${'x'.repeat(19 * 1024 * 1024)}"`; // not even JSON
    const started = Date.now();
    const res = await fetch(`${s.url}/v1/pods/a/removals`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    const body = (await res.json()) as { error: { code: string } };
    console.log('anonymous 19MB:', res.status, body.error.code, `${Date.now() - started} ms`);
    // Expected: AUTH_REQUIRED (401), as every other pod route answers a caller without a token.
    expect([res.status, body.error.code]).toEqual([401, 'AUTH_REQUIRED']);
  });
});
