// Every Keymanager route of the fake VC wants its bearer token (keymanager-oapi.yaml: "All
// sensitive routes MUST be authenticated with a token"): 401 without one, 403 with a wrong
// one, each an ErrorResponse; the token comes from a token file and survives a restart.
import { readFile, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { http } from '../helpers.js';
import { keystores } from '../support/keymanager-fixture.js';
import { km, lab } from './setup.js';

const PK = `0x${'a1'.repeat(48)}`;
const ROUTES: Array<['GET' | 'POST' | 'DELETE', string, unknown?]> = [
  ['GET', '/eth/v1/keystores'],
  ['POST', '/eth/v1/keystores', { keystores: [], passwords: [] }],
  ['DELETE', '/eth/v1/keystores', { pubkeys: [PK] }],
  ['GET', '/eth/v1/remotekeys'],
  ['POST', '/eth/v1/remotekeys', { remote_keys: [] }],
  ['DELETE', '/eth/v1/remotekeys', { pubkeys: [PK] }],
  ...(['feerecipient', 'graffiti', 'gas_limit'] as const).flatMap((r) => [
    ['GET', `/eth/v1/validator/${PK}/${r}`] as ['GET', string],
    ['DELETE', `/eth/v1/validator/${PK}/${r}`] as ['DELETE', string],
  ]),
  ['POST', `/eth/v1/validator/${PK}/feerecipient`, { ethaddress: `0x${'12'.repeat(20)}` }],
  ['POST', `/eth/v1/validator/${PK}/graffiti`, { graffiti: 'x' }],
  ['POST', `/eth/v1/validator/${PK}/gas_limit`, { gas_limit: '30000000' }],
];

describe('fake VC: bearer auth', () => {
  it('refuses every route without the token (401) and with a wrong one (403), changing nothing', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(1);
    for (const [method, path, body] of ROUTES) {
      expect((await km(vc.url, undefined, method, path, body)).status, `${method} ${path}`).toBe(
        401,
      );
      expect((await km(vc.url, 'f'.repeat(64), method, path, body)).status).toBe(403);
    }
    const imp = { keystores: k.keystores, passwords: k.passwords };
    expect((await km(vc.url, 'nope', 'POST', '/eth/v1/keystores', imp)).status).toBe(403);
    expect(vc.holdings().local).toEqual([]);
    const attest = await http(vc.url, 'POST', '/fake/v1/attest', {});
    expect(attest.status).toBe(401);
  });

  it('keeps its token in a 0600 token file of 256 bits, and reads it back on restart', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    expect((await readFile(vc.tokenFile, 'utf8')).trim()).toBe(vc.token);
    expect(vc.token).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(vc.tokenFile)).mode & 0o777).toBe(0o600);
    await vc.stop();
    const again = await l.vc('vc-a');
    expect(again.token).toBe(vc.token);
    expect((await km(again.url, again.token, 'GET', '/eth/v1/keystores')).status).toBe(200);
  });
});
