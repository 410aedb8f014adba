// Adversarial review of issue 16: where a moved key lands. A rebalance's plain names are pod
// identities taken as they come (no pod-name check, no served-namespace check, unlike POST
// /v1/moves); a move's destination deleted while the key is leaving still receives it.
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { type AllocationBody, http, startTestServer } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import { KUBELET, podStatus, review } from '../support/review.js';

const ROOT = `0x${'ab'.repeat(32)}`;
const GENESIS = Date.UTC(2020, 11, 1) / 1000;
const beacon = { genesisTime: GENESIS, genesisValidatorsRoot: ROOT };
const HOOK = '/v1/webhooks/pod-deletion';

async function allocate(url: string, path: string, count: number): Promise<string[]> {
  const res = await http<AllocationBody>(url, 'POST', path, { count });
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
}

describe('rebalance selectors are pod identities', () => {
  it('a plain name that is no pod identity is refused, as POST /v1/moves refuses it', async () => {
    const s = await startTestServer({ beacon });
    await allocate(s.url, '/v1/pods/a/keys', 4);
    const bad = ['a,x/y/z', `a,${'n'.repeat(300)}`, 'a,-b', 'a,b..c'];
    const seen: Array<[string, number, unknown]> = [];
    for (const selector of bad) {
      const res = await http<{ moves?: unknown; error?: { code: string } }>(
        s.url,
        'POST',
        '/v1/rebalance',
        { selector },
      );
      seen.push([selector, res.status, res.body.error?.code ?? res.body.moves]);
    }
    // Expected: each refused with a code (INVALID_BODY / INVALID_POD_NAME), nothing leaving.
    expect(seen.filter(([, status]) => status === 200)).toEqual([]);
  });

  it('a plain name outside the served namespaces is refused (NAMESPACE_NOT_SERVED), as a move’s', async () => {
    const s = await startTestServer({ beacon, namespaces: ['validators'] });
    await allocate(s.url, '/v1/namespaces/validators/pods/a/keys', 4);
    const move = await http(s.url, 'POST', '/v1/moves', {
      from: 'validators/a',
      to: 'other/b',
      count: 1,
    });
    expect(move.body.error?.code).toBe('NAMESPACE_NOT_SERVED');
    const res = await http<{ moves?: unknown; error?: { code: string } }>(
      s.url,
      'POST',
      '/v1/rebalance',
      { selector: 'validators/a,other/b' },
    );
    // (Adapted: NAMESPACE_NOT_SERVED is a 403 wherever it is answered, the move's above too.)
    expect([res.status, res.body.error?.code ?? res.body.moves]).toEqual([
      move.status,
      'NAMESPACE_NOT_SERVED',
    ]);
    expect(move.status).toBe(403);
  });
});

describe('rebalance selector patterns', () => {
  it('a pattern with more than one "/" is refused (INVALID_BODY), and nothing is leaving', async () => {
    const s = await startTestServer({ beacon });
    const keys = await allocate(s.url, '/v1/pods/a/keys', 4);
    for (const selector of ['a,x/y/*', '*/*/*', 'a,b/c/d']) {
      const res = await http(s.url, 'POST', '/v1/rebalance', { selector });
      expect([selector, res.status, res.body.error?.code]).toEqual([selector, 400, 'INVALID_BODY']);
    }
    for (const r of await s.store.getKeys(keys)) expect(r.leaving).toBeUndefined();
  });
});

describe('a move whose destination is deleted while the key is leaving', () => {
  it('the key does not land with a pod that is gone', async () => {
    const s = await startTestServer({ beacon });
    const a = '/v1/namespaces/validators/pods/validator-0/keys';
    await allocate(s.url, a, 2);
    await allocate(s.url, '/v1/namespaces/validators/pods/validator-1/keys', 1);
    const move = await http<{ keys: string[] }>(s.url, 'POST', '/v1/moves', {
      from: 'validators/validator-0',
      to: 'validators/validator-1',
      count: 1,
    });
    expect(move.status).toBe(200);
    const x = move.body.keys[0] ?? '';
    // validator-1 is scaled away: the kubelet's final DELETE (a confirmed stop).
    const hook = await http(
      s.url,
      'POST',
      HOOK,
      review({ name: 'validator-1', userInfo: KUBELET, grace: 0, status: podStatus('terminated') }),
    );
    expect(hook.status).toBe(200);
    const report = await http<{ keys: Array<{ outcome: string; to?: string }> }>(
      s.url,
      'POST',
      '/v1/namespaces/validators/pods/validator-0/removals',
      {
        keys: [{ pubkey: x, status: 'deleted' }],
        slashing_protection: JSON.stringify(interchangeFor(ROOT, [x])),
      },
    );
    console.log('report', JSON.stringify(report.body.keys));
    const r = await s.store.getKey(x);
    console.log('x is', r?.state, r?.pod);
    expect((await checkStore(s.store)).problems).toEqual([]);
    // Expected: free (or cooling), not allocated to the deleted validator-1.
    expect(r?.state === 'allocated' && r.pod === 'validators/validator-1').toBe(false);
  });
});
