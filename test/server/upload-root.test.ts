// Who fixes the store's genesis_validators_root (DESIGN.md "Safety rules": a pod's upload never
// does; it comes from --network or an admin). Over real HTTP, pods authenticated by TokenReview
// against the fake Kubernetes API, operators by an admin token.
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { NETWORKS } from '../../src/deposit/networks.js';
import { KubeTokenReviewer } from '../../src/kube/token-review.js';
import { Auth } from '../../src/server/auth.js';
import { MetaKey } from '../../src/store/buckets.js';
import {
  type AllocationBody,
  type ErrorBody,
  http,
  startTestServer,
  type TestServer,
} from '../helpers.js';
import { fakeKubeApiEachTest } from '../kube/fake-api.js';
import { interchangeFor } from '../support/interchange.js';

const ADMIN = 'a1'.repeat(32);
const HOODI = NETWORKS.hoodi.genesisValidatorsRoot ?? '';
const MAINNET = NETWORKS.mainnet.genesisValidatorsRoot ?? '';
const OTHER = `0x${'77'.repeat(32)}`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

interface Stored {
  pod: string;
  pubkeys: string[];
  ignored: Array<{ pubkey: string; reason: string }>;
}

const interchange = interchangeFor;

const kube = fakeKubeApiEachTest();

/** The app with TokenReview pod tokens and an admin token; `root` as --network would set it. */
async function serveWithAuth(root?: string): Promise<TestServer> {
  const kc = new KubeConfig();
  kc.loadFromString(kube.api.kubeconfigYaml());
  let server: TestServer | undefined;
  const now = () => server?.clock.now() ?? Date.now();
  kube.api.now = now;
  const auth = new Auth({
    adminTokens: [ADMIN],
    reviewer: new KubeTokenReviewer(kc, 'pkm'),
    clock: now,
  });
  server = await startTestServer({
    auth,
    ...(root
      ? { beacon: { genesisTime: NETWORKS.hoodi.genesisTime ?? 0, genesisValidatorsRoot: root } }
      : {}),
  });
  return server;
}

async function keysFor(server: TestServer, pod: string, token: string, count = 1) {
  const res = await http<AllocationBody>(
    server.url,
    'POST',
    `/v1/pods/${pod}/keys`,
    { count },
    bearer(token),
  );
  expect(res.status).toBe(200);
  return res.body.keys.map((k) => k.pubkey);
}

const upload = (server: TestServer, pod: string, body: unknown, headers: Record<string, string>) =>
  http<Stored & ErrorBody>(
    server.url,
    'POST',
    `/v1/pods/${pod}/slashing-protection`,
    body,
    headers,
  );
const storedRoot = (server: TestServer) => server.store.getMeta(MetaKey.genesisValidatorsRoot);

describe('the genesis root, with pod tokens on', () => {
  it('a pod with no keys sending data: [] before the root is known fixes nothing: a coded refusal', async () => {
    const server = await serveWithAuth();
    const token = kube.api.issueToken('default', 'idle-0');
    const before = await server.store.rawEntries();
    const res = await upload(server, 'idle-0', interchange(OTHER, []), bearer(token));
    expect([res.status, res.body]).toEqual([
      409,
      {
        error: {
          code: 'GENESIS_ROOT_UNKNOWN',
          message: expect.stringMatching(/--network .*--genesis-validators-root .*admin token/),
        },
      },
    ]);
    expect(await server.store.rawEntries()).toEqual(before);
    expect(await storedRoot(server)).toBeUndefined();
  });

  it("a pod's upload of its own keys' history fixes nothing either, and stores nothing", async () => {
    const server = await serveWithAuth();
    const token = kube.api.issueToken('default', 'validator-0');
    const [k] = await keysFor(server, 'validator-0', token);
    const before = await server.store.rawEntries();
    const res = await upload(server, 'validator-0', interchange(OTHER, [k ?? '']), bearer(token));
    expect([res.status, res.body.error.code]).toEqual([409, 'GENESIS_ROOT_UNKNOWN']);
    expect(await server.store.rawEntries()).toEqual(before);
    // Every honest upload after it is still possible: the root is not the pod's to choose.
    expect(await storedRoot(server)).toBeUndefined();
  });

  it('an admin upload fixes the root, even with no data; pods then upload under it, and another root is a 409 naming both', async () => {
    const server = await serveWithAuth();
    const token = kube.api.issueToken('default', 'validator-0');
    const [k] = await keysFor(server, 'validator-0', token);
    const set = await upload(server, 'any-pod', interchange(HOODI, []), bearer(ADMIN));
    expect([set.status, set.body]).toEqual([200, { pod: 'any-pod', pubkeys: [], ignored: [] }]);
    expect(await storedRoot(server)).toBe(HOODI);

    const own = await upload(server, 'validator-0', interchange(HOODI, [k ?? '']), bearer(token));
    expect([own.status, own.body.pubkeys]).toEqual([200, [k]]);

    const before = await server.store.rawEntries();
    const wrong = await upload(
      server,
      'validator-0',
      interchange(MAINNET, [k ?? ''], 999),
      bearer(token),
    );
    expect(wrong.status).toBe(409);
    expect(wrong.body.error.code).toBe('INTERCHANGE_MISMATCH');
    expect(wrong.body.error.message).toContain(MAINNET);
    expect(wrong.body.error.message).toContain(HOODI);
    // An admin cannot move it by uploading again either: the first one fixed it.
    const moved = await upload(server, 'validator-0', interchange(MAINNET, []), bearer(ADMIN));
    expect([moved.status, moved.body.error.code]).toEqual([409, 'INTERCHANGE_MISMATCH']);
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it("--network names the root: a pod's upload under it is stored (and the root recorded), another is a 409 naming both", async () => {
    const server = await serveWithAuth(HOODI);
    const token = kube.api.issueToken('default', 'validator-0');
    const [k] = await keysFor(server, 'validator-0', token);
    const before = await server.store.rawEntries();
    const wrong = await upload(server, 'validator-0', interchange(OTHER, [k ?? '']), bearer(token));
    expect([wrong.status, wrong.body.error.code]).toEqual([409, 'INTERCHANGE_MISMATCH']);
    expect(wrong.body.error.message).toMatch(
      new RegExp(`${OTHER}.*${HOODI} \\(the configured root\\)`),
    );
    expect(await server.store.rawEntries()).toEqual(before);

    const ok = await upload(server, 'validator-0', interchange(HOODI, [k ?? '']), bearer(token));
    expect([ok.status, ok.body]).toEqual([200, { pod: 'validator-0', pubkeys: [k], ignored: [] }]);
    // Recorded with the first history stored, so a later start on another network is refused.
    expect(await storedRoot(server)).toBe(HOODI);
  });

  it("a pod's token still uploads only for its own pod", async () => {
    const server = await serveWithAuth(HOODI);
    const token = kube.api.issueToken('default', 'validator-0');
    const before = await server.store.rawEntries();
    const res = await upload(server, 'validator-1', interchange(HOODI, []), bearer(token));
    expect([res.status, res.body.error.code]).toEqual([403, 'FORBIDDEN']);
    expect(await server.store.rawEntries()).toEqual(before);
  });
});

describe('the genesis root, with no authentication (loopback only)', () => {
  it('data: [] before the root is known fixes nothing and writes nothing', async () => {
    const server = await startTestServer();
    const before = await server.store.rawEntries();
    const res = await upload(server, 'idle-0', interchange(OTHER, []), {});
    expect([res.status, res.body]).toEqual([200, { pod: 'idle-0', pubkeys: [], ignored: [] }]);
    expect(await server.store.rawEntries()).toEqual(before);
    expect(await storedRoot(server)).toBeUndefined();
  });

  it('an upload naming only keys the pod does not hold fixes nothing', async () => {
    const server = await startTestServer();
    const [k] = (
      await http<AllocationBody>(server.url, 'POST', '/v1/pods/a/keys', { count: 1 })
    ).body.keys.map((x) => x.pubkey);
    const before = await server.store.rawEntries();
    const res = await upload(server, 'b', interchange(OTHER, [k ?? '']), {});
    expect(res.body).toEqual({
      pod: 'b',
      pubkeys: [],
      ignored: [{ pubkey: k, reason: 'not-held' }],
    });
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it('the first upload that stores a history fixes the root, as before', async () => {
    const server = await startTestServer();
    const [k] = (
      await http<AllocationBody>(server.url, 'POST', '/v1/pods/a/keys', { count: 1 })
    ).body.keys.map((x) => x.pubkey);
    const first = await upload(server, 'a', interchange(HOODI, [k ?? '']), {});
    expect(first.body.pubkeys).toEqual([k]);
    expect(await storedRoot(server)).toBe(HOODI);
    const other = await upload(server, 'a', interchange(OTHER, [k ?? '']), {});
    expect([other.status, other.body.error.code]).toEqual([409, 'INTERCHANGE_MISMATCH']);
    expect(other.body.error.message).toMatch(
      new RegExp(`${OTHER}.*${HOODI} \\(the root of earlier uploads\\)`),
    );
  });
});
