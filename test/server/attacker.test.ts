// Tried as an attacker would (issue "No pod takes what is not its own"): every route in the
// OpenAPI document that asks for a token, both pod-route forms, with another pod's token,
// another namespace's, a token for another audience, an expired one, a malformed one and none;
// and forged deletion reviews. Each gets a coded refusal, the store stays byte-identical, and
// no answer carries a victim's secret key. Pod tokens are checked by TokenReview against a
// fake Kubernetes API on 127.0.0.1 that speaks authentication.k8s.io/v1.
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeTokenReviewer } from '../../src/kube/token-review.js';
import { Auth } from '../../src/server/auth.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { VERSION } from '../../src/version.js';
import { type AllocationBody, http, startTestServer, type TestServer } from '../helpers.js';
import { FakeKubeApi } from '../kube/fake-api.js';
import { OPERATOR, review } from '../support/review.js';

const ADMIN = 'ad'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const REFUSALS = new Set(['AUTH_REQUIRED', 'INVALID_TOKEN', 'FORBIDDEN']);

let api: FakeKubeApi;
let server: TestServer;

beforeEach(async () => {
  api = new FakeKubeApi();
  await api.start();
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfigYaml());
  const now = () => server.clock.now();
  api.now = now;
  server = await startTestServer({
    auth: new Auth({
      adminTokens: [ADMIN],
      reviewer: new KubeTokenReviewer(kc, 'pkm'),
      clock: now,
    }),
  });
});
afterEach(async () => {
  await api.stop();
});

/** Victims in two namespaces, each holding keys whose secrets no attacker may see. */
async function victims() {
  const secrets: string[] = [];
  const pubkeys: string[] = [];
  for (const [ns, path] of [
    ['default', '/v1/pods/validator-0/keys'],
    ['team-b', '/v1/namespaces/team-b/pods/validator-0/keys'],
  ] as const) {
    const token = api.issueToken(ns, 'validator-0');
    const res = await http<AllocationBody>(server.url, 'POST', path, { count: 2 }, bearer(token));
    expect(res.status).toBe(200);
    for (const k of res.body.keys) {
      secrets.push(k.secretKey.slice(2));
      pubkeys.push(k.pubkey);
    }
  }
  return { secrets, pubkeys };
}

/** Every operation of the OpenAPI document that asks for some credential. */
function guardedOperations(): Array<{ method: string; path: string }> {
  const doc = openApiDocument(VERSION) as {
    paths: Record<string, Record<string, { security?: Array<Record<string, unknown>> }>>;
  };
  const ops: Array<{ method: string; path: string }> = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters' || typeof op !== 'object') continue;
      const security = op.security ?? [];
      // [] is public; an alternative {} means anonymous callers may pass (the page when public).
      if (security.length === 0 || security.some((s) => Object.keys(s).length === 0)) continue;
      ops.push({ method: method.toUpperCase(), path });
    }
  }
  return ops;
}

/** A plausible body for each operation, aimed at the victim in the default namespace. */
function bodyFor(method: string, path: string, pubkeys: readonly string[]): unknown {
  if (method !== 'POST') return undefined;
  if (path.endsWith('/keys')) return { count: 3 };
  if (path.endsWith('/heartbeat')) return { pubkeys };
  if (path.endsWith('/slashing-protection'))
    return {
      metadata: {
        interchange_format_version: '5',
        genesis_validators_root: `0x${'00'.repeat(32)}`,
      },
      data: pubkeys.map((pubkey) => ({ pubkey, signed_blocks: [], signed_attestations: [] })),
    };
  if (path.includes('/retire')) return { reason: 'attacker' };
  return {};
}

describe('an attacker with the wrong credential', () => {
  it('is refused on every guarded route, changes nothing, and sees no secret', async () => {
    const { secrets, pubkeys } = await victims();
    const victim = pubkeys[0] ?? '';
    const expired = api.issueToken('default', 'validator-0', 30);
    server.clock.advance(31_000);
    const callers: Array<[string, Record<string, string>]> = [
      ['no token', {}],
      ['another pod', bearer(api.issueToken('default', 'attacker-7'))],
      ['the same name in another namespace', bearer(api.issueToken('evil', 'validator-0'))],
      ['another audience', bearer(api.issueToken('default', 'validator-0', 3600, 'vault'))],
      ['an expired token', bearer(expired)],
      ['a malformed token', bearer('x.y.z')],
      ['a Basic password that is no admin token', { authorization: 'Basic YTpi' }],
    ];
    const ops = guardedOperations();
    expect(ops.length).toBeGreaterThanOrEqual(15);
    const before = await server.store.rawEntries();
    const answered: string[] = [];
    for (const { method, path: template } of ops) {
      for (const ns of ['default', 'team-b']) {
        if (ns === 'team-b' && !template.includes('{namespace}')) continue;
        const path = template
          .replace('{namespace}', ns)
          .replace('{pod}', 'validator-0')
          .replace('{pubkey}', victim);
        for (const [who, headers] of callers) {
          // The same name in another namespace is its own pod on that namespace's routes.
          const res = await http<{ error?: { code: string } }>(
            server.url,
            method,
            path,
            bodyFor(method, template, pubkeys),
            headers,
          );
          const text = JSON.stringify(res.body);
          for (const s of secrets) expect(text).not.toContain(s);
          answered.push(`${method} ${path} as ${who}: ${res.status} ${res.body.error?.code}`);
          expect([401, 403]).toContain(res.status);
          expect(REFUSALS.has(res.body.error?.code ?? '')).toBe(true);
        }
      }
    }
    expect(await server.store.rawEntries()).toEqual(before);
    expect(answered.length).toBeGreaterThan(100);
  });

  it('with its own token, on its own routes, gets nothing of the victim: its claims and uploads change nothing, its allocation holds none of the victim’s keys', async () => {
    const { secrets, pubkeys } = await victims();
    const token = bearer(api.issueToken('default', 'attacker-7'));
    const before = await server.store.rawEntries();
    const beat = await http<{ refused: string[] }>(
      server.url,
      'POST',
      '/v1/pods/attacker-7/heartbeat',
      { pubkeys },
      token,
    );
    expect(beat.status).toBe(200);
    expect([...beat.body.refused].sort()).toEqual([...pubkeys].sort());
    // An upload naming the victims' keys, on its own route: it cannot fix the genesis root (a
    // pod never does), and it takes nothing for keys it does not hold.
    const upload = await http<{ error?: { code: string } }>(
      server.url,
      'POST',
      '/v1/pods/attacker-7/slashing-protection',
      bodyFor('POST', '/slashing-protection', pubkeys),
      token,
    );
    expect([upload.status, upload.body.error?.code]).toEqual([409, 'GENESIS_ROOT_UNKNOWN']);
    expect(await server.store.rawEntries()).toEqual(before);
    // Once an operator has set the root, the same upload is taken key by key: none is its own.
    const empty = { ...(bodyFor('POST', '/slashing-protection', []) as object) };
    const set = await http(
      server.url,
      'POST',
      '/v1/pods/attacker-7/slashing-protection',
      empty,
      bearer(ADMIN),
    );
    expect(set.status).toBe(200);
    const rooted = await server.store.rawEntries();
    const again = await http<{ pubkeys: string[]; ignored: Array<{ pubkey: string }> }>(
      server.url,
      'POST',
      '/v1/pods/attacker-7/slashing-protection',
      bodyFor('POST', '/slashing-protection', pubkeys),
      token,
    );
    expect(again.status).toBe(200);
    expect(again.body.pubkeys).toEqual([]);
    expect(again.body.ignored.map((i) => i.pubkey).sort()).toEqual([...pubkeys].sort());
    expect(await server.store.rawEntries()).toEqual(rooted);
    const own = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/attacker-7/keys',
      { count: 2 },
      token,
    );
    expect(own.status).toBe(200);
    const text = JSON.stringify(own.body);
    for (const s of secrets) expect(text).not.toContain(s);
    for (const pk of pubkeys) expect(text).not.toContain(pk);
  });

  it('cannot release a running pod with a forged deletion review', async () => {
    const { pubkeys } = await victims();
    const before = await server.store.rawEntries();
    const forged = review({ name: 'validator-0', userInfo: OPERATOR });
    for (const headers of [
      {},
      bearer(api.issueToken('default', 'attacker-7')),
      bearer(api.issueToken('default', 'validator-0')), // the victim's own token, stolen
    ]) {
      const res = await http<{ error?: { code: string } }>(
        server.url,
        'POST',
        '/v1/webhooks/pod-deletion',
        forged,
        headers,
      );
      expect([401, 403]).toContain(res.status);
    }
    expect(await server.store.rawEntries()).toEqual(before);
    const held = await http<{ pubkeys: string[] }>(
      server.url,
      'GET',
      '/v1/pods/validator-0/keys',
      undefined,
      bearer(ADMIN),
    );
    expect(held.body.pubkeys).toEqual(pubkeys.slice(0, 2));
  });
});
