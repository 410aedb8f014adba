// POST /eth/v1/validator/{pubkey}/voluntary_exit over a real store and real HTTP: the answer as
// voluntary_exit.yaml shapes it and verified without pkm's signing path, the index given or
// looked up on a fake beacon node on 127.0.0.1, and every refusal coded, in the Keymanager
// error shape, changing nothing.

import { ssz } from '@lodestar/types';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { describe, expect, it } from 'vitest';
import { SignVoluntaryExitAnswer } from '../../src/api/exits.js';
import { BeaconLivenessGate } from '../../src/beacon/liveness.js';
import { exitChainOf } from '../../src/deposit/exit-chain.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { Auth } from '../../src/server/auth.js';
import { fakeBeacon } from '../beacon/fake-beacon.js';
import { type AllocationBody, http, startTestServer } from '../helpers.js';

const ADMIN = 'ad'.repeat(32);
const admin = { authorization: `Bearer ${ADMIN}` };
const HOODI = NETWORKS.hoodi;
const chain = exitChainOf(HOODI);
const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';
const hex = (s: string) => Uint8Array.from(Buffer.from(s.slice(2), 'hex'));
const path = (pubkey: string, query = '') => `/eth/v1/validator/${pubkey}/voluntary_exit${query}`;

interface KeymanagerError {
  readonly message: string;
  readonly error: { readonly code: string; readonly message: string };
}

/** Verifies an exit of hoodi against `pubkey` with @lodestar/types and @noble/curves directly. */
function verifiesOnHoodi(pubkey: string, body: unknown): boolean {
  const { data } = SignVoluntaryExitAnswer.parse(body);
  const forkDataRoot = ssz.phase0.ForkData.hashTreeRoot({
    currentVersion: hex('0x40000910'),
    genesisValidatorsRoot: hex(HOODI.genesisValidatorsRoot ?? ''),
  });
  const domain = Uint8Array.from([0x04, 0, 0, 0, ...forkDataRoot.subarray(0, 28)]);
  const objectRoot = ssz.phase0.VoluntaryExit.hashTreeRoot({
    epoch: Number(data.message.epoch),
    validatorIndex: Number(data.message.validator_index),
  });
  const signingRoot = ssz.phase0.SigningData.hashTreeRoot({ objectRoot, domain });
  const sigs = bls12_381.longSignatures;
  return sigs.verify(hex(data.signature), sigs.hash(signingRoot, DST), hex(pubkey));
}

async function serverWithKeys(opts: Parameters<typeof startTestServer>[0] = {}) {
  const server = await startTestServer({
    auth: new Auth({ adminTokens: [ADMIN] }),
    ...(chain ? { exitChain: chain } : {}),
    ...opts,
  });
  const res = await http<AllocationBody>(
    server.url,
    'POST',
    '/v1/pods/validator-0/keys',
    { count: 2 },
    admin,
  );
  expect(res.status).toBe(200);
  const secrets = res.body.keys.map((k) => k.secretKey.slice(2));
  return { server, pubkeys: res.body.keys.map((k) => k.pubkey), secrets };
}

describe('POST /eth/v1/validator/{pubkey}/voluntary_exit', () => {
  it('signs an exit that verifies, with the index given, in the spec’s shape, secret-free', async () => {
    const { server, pubkeys, secrets } = await serverWithKeys();
    const pk = pubkeys[0] ?? '';
    const res = await http(
      server.url,
      'POST',
      path(pk, '?epoch=0&validator_index=42'),
      undefined,
      admin,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(Object.keys(res.body as object)).toEqual(['data']);
    expect(SignVoluntaryExitAnswer.parse(res.body).data.message).toEqual({
      epoch: '0',
      validator_index: '42',
    });
    expect(verifiesOnHoodi(pk, res.body)).toBe(true);
    expect(verifiesOnHoodi(pubkeys[1] ?? '', res.body)).toBe(false);
    for (const s of secrets) expect(JSON.stringify(res.body)).not.toContain(s);
    // Upper case in the path is the same key.
    const upper = await http(
      server.url,
      'POST',
      path(`0x${pk.slice(2).toUpperCase()}`, '?epoch=5&validator_index=42'),
      undefined,
      admin,
    );
    expect(upper.status).toBe(200);
    expect(verifiesOnHoodi(pk, upper.body)).toBe(true);
  });

  it('defaults the epoch to hoodi’s current one, as the spec says', async () => {
    const { server, pubkeys } = await serverWithKeys();
    const res = await http(
      server.url,
      'POST',
      path(pubkeys[0] ?? '', '?validator_index=3'),
      undefined,
      admin,
    );
    const genesis = HOODI.genesisTime ?? 0;
    const epoch = Math.floor((server.clock.now() / 1000 - genesis) / 384);
    expect(SignVoluntaryExitAnswer.parse(res.body).data.message.epoch).toBe(String(epoch));
  });

  it('looks the index up on the beacon node, and names a key that is no validator', async () => {
    const beacon = await fakeBeacon();
    const { server, pubkeys } = await serverWithKeys({
      liveness: new BeaconLivenessGate(beacon.url, HOODI, { checkTtlMs: 0 }),
    });
    beacon.state.now = server.clock.now;
    const [onChain = '', absent = ''] = pubkeys;
    beacon.state.validators.set(onChain, {
      index: '1234',
      status: 'active_ongoing',
      slashed: false,
    });
    const res = await http(server.url, 'POST', path(onChain, '?epoch=0'), undefined, admin);
    expect(res.status).toBe(200);
    expect(SignVoluntaryExitAnswer.parse(res.body).data.message.validator_index).toBe('1234');
    expect(verifiesOnHoodi(onChain, res.body)).toBe(true);
    expect(beacon.calls).toContain('POST /eth/v1/beacon/states/head/validators');
    expect(beacon.calls.some((c) => c.includes('liveness'))).toBe(false);
    const missing = await http<KeymanagerError>(
      server.url,
      'POST',
      path(absent, '?epoch=0'),
      undefined,
      admin,
    );
    expect([missing.status, missing.body.error.code]).toEqual([404, 'VALIDATOR_INDEX_UNKNOWN']);
    expect(missing.body.message).toContain(absent);
    // A node that cannot answer fails closed, never as "no such validator".
    beacon.state.syncing.is_syncing = true;
    const closed = await http<KeymanagerError>(
      server.url,
      'POST',
      path(onChain, '?epoch=0'),
      undefined,
      admin,
    );
    expect([closed.status, closed.body.error.code]).toEqual([503, 'BEACON_UNAVAILABLE']);
  });

  it('refuses, coded and in the Keymanager error shape, changing nothing', async () => {
    const { server, pubkeys } = await serverWithKeys();
    const pk = pubkeys[0] ?? '';
    const retired = pubkeys[1] ?? '';
    await http(server.url, 'DELETE', '/v1/pods/validator-0/keys', undefined, admin);
    server.clock.advance(60 * 60_000);
    const r = await http(server.url, 'POST', `/v1/keys/${retired}/retire`, {}, admin);
    expect(r.status).toBe(200);
    const before = await server.store.rawEntries();
    const cases: Array<[string, Record<string, string>, number, string]> = [
      [path(pk, '?validator_index=1'), {}, 401, 'AUTH_REQUIRED'],
      [path(pk, '?validator_index=1'), { authorization: 'Bearer nope' }, 403, 'INVALID_TOKEN'],
      [path(`0x${'ab'.repeat(48)}`, '?validator_index=1'), admin, 404, 'KEY_NOT_FOUND'],
      [path(retired, '?validator_index=1'), admin, 404, 'KEY_NOT_FOUND'],
      [path('0x1234', '?validator_index=1'), admin, 400, 'INVALID_PUBKEY'],
      [path(pk, '?validator_index=-1'), admin, 400, 'INVALID_QUERY'],
      [path(pk, '?epoch=18446744073709551616&validator_index=1'), admin, 400, 'INVALID_QUERY'],
      [path(pk, '?epoch=01&validator_index=1'), admin, 400, 'INVALID_QUERY'],
      [path(pk, '?validator_index=1&pod=x'), admin, 400, 'INVALID_QUERY'],
      [path(pk), admin, 404, 'VALIDATOR_INDEX_UNKNOWN'],
    ];
    for (const [p, headers, status, code] of cases) {
      const res = await http<KeymanagerError>(server.url, 'POST', p, undefined, headers);
      expect([p, res.status, res.body.error.code]).toEqual([p, status, code]);
      expect(res.body.message).toBe(res.body.error.message);
    }
    const get = await http<KeymanagerError>(server.url, 'GET', path(pk), undefined, admin);
    expect([get.status, get.body.error.code, typeof get.body.message]).toEqual([
      405,
      'METHOD_NOT_ALLOWED',
      'string',
    ]);
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it('refuses every exit on a server without a named network', async () => {
    const server = await startTestServer({ auth: new Auth({ adminTokens: [ADMIN] }) });
    const res = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/v-0/keys',
      { count: 1 },
      admin,
    );
    const pk = res.body.keys[0]?.pubkey ?? '';
    const exit = await http<KeymanagerError>(
      server.url,
      'POST',
      path(pk, '?epoch=0&validator_index=1'),
      undefined,
      admin,
    );
    expect([exit.status, exit.body.error.code]).toEqual([409, 'EXIT_CHAIN_UNKNOWN']);
  });

  it('needs ?epoch where the chain’s genesis time is unknown', async () => {
    if (!chain) throw new Error('hoodi has no exit chain');
    const { genesisTime: _t, ...custom } = chain;
    const { server, pubkeys } = await serverWithKeys({ exitChain: { ...custom, name: 'custom' } });
    const res = await http<KeymanagerError>(
      server.url,
      'POST',
      path(pubkeys[0] ?? '', '?validator_index=1'),
      undefined,
      admin,
    );
    expect([res.status, res.body.error.code]).toEqual([400, 'INVALID_QUERY']);
    const ok = await http(
      server.url,
      'POST',
      path(pubkeys[0] ?? '', '?validator_index=1&epoch=0'),
      undefined,
      admin,
    );
    expect(verifiesOnHoodi(pubkeys[0] ?? '', ok.body)).toBe(true);
  });
});
