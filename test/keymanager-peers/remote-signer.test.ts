// The fake VC's /eth/v1/remotekeys (remote_keystores.yaml) and the fake Web3Signer: a VC signs
// with a remote key only while its registration and the signer's key both exist, the signer
// signs only keys it holds (404) and what its history allows (412), and its DELETE returns
// the protection of what it signed.
import { describe, expect, it } from 'vitest';
import { bls } from '../../src/keys/bls-backend.js';
import { http } from '../helpers.js';
import { keystores, type Statuses } from '../support/keymanager-fixture.js';
import { holdersOf } from '../support/keymanager-peers/index.js';
import { km, lab } from './setup.js';

const REMOTE = '/eth/v1/remotekeys';
type Listed = { data: Array<{ pubkey: string; url: string }> };
const fromHex = (h: string) => Buffer.from(h.replace(/^0x/, ''), 'hex');

describe('fake VC remote keys through the fake Web3Signer', () => {
  it('registers, lists and deletes remote keys with the spec statuses', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const signer = await l.signer('w3s');
    const k = await keystores(2);
    const [a, b] = [k.pubkeys[0] ?? '', k.pubkeys[1] ?? ''];
    await km(vc.url, vc.token, 'POST', '/eth/v1/keystores', {
      keystores: [k.keystores[1]],
      passwords: [k.passwords[1]],
    });
    // The last item breaks the schema on purpose (raw): it gets an error status of its own.
    const imp = await km<Statuses>(
      vc.url,
      vc.token,
      'POST',
      REMOTE,
      {
        remote_keys: [
          { pubkey: a, url: signer.url },
          { pubkey: a, url: signer.url },
          { pubkey: b, url: signer.url },
          { pubkey: '0x12', url: signer.url },
        ],
      },
      true,
    );
    expect(imp.body.data.map((d) => d.status)).toEqual([
      'imported',
      'duplicate',
      'duplicate',
      'error',
    ]);
    const list = await km<Listed>(vc.url, vc.token, 'GET', REMOTE);
    expect(list.body.data).toEqual([{ pubkey: a, url: signer.url, readonly: false }]);
    // Each kind of key leaves only through its own route.
    const wrongWay = await km<Statuses>(vc.url, vc.token, 'DELETE', '/eth/v1/keystores', {
      pubkeys: [a],
    });
    expect(wrongWay.body.data[0]?.status).toBe('error');
    expect(JSON.parse(wrongWay.body.slashing_protection).data).toEqual([]);
    const del = await km<Statuses>(vc.url, vc.token, 'DELETE', REMOTE, {
      pubkeys: [a, b, `0x${'c3'.repeat(48)}`],
    });
    expect(del.body.data.map((d) => d.status)).toEqual(['deleted', 'error', 'not_found']);
    expect((await km<Listed>(vc.url, vc.token, 'GET', REMOTE)).body.data).toEqual([]);
  });

  it('signs through the signer only while both the registration and the signer’s key exist', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const signer = await l.signer('w3s');
    const k = await keystores(1);
    const pk = k.pubkeys[0] ?? '';
    await km(vc.url, vc.token, 'POST', REMOTE, { remote_keys: [{ pubkey: pk, url: signer.url }] });
    const before = await vc.attest(4);
    expect(before.signed).toEqual([]);
    expect(before.refused[0]?.reason).toMatch(/404/);
    expect(holdersOf(l.witness.read(), pk).signers).toEqual([]);
    const put = await km<Statuses>(signer.url, undefined, 'POST', '/eth/v1/keystores', {
      keystores: k.keystores,
      passwords: k.passwords,
    });
    expect(put.body.data[0]?.status).toBe('imported');
    expect(holdersOf(l.witness.read(), pk)).toEqual({ places: ['w3s'], signers: ['vc-a'] });
    const report = await vc.attest(5);
    const sig = report.signed[0];
    expect(sig?.via).toBe(signer.url);
    const root = l.witness.read().find((e) => e.kind === 'signed' && e.peer === 'w3s');
    expect(
      root?.kind === 'signed' &&
        bls.verify(fromHex(pk), fromHex(root.root), fromHex(sig?.signature ?? '')),
    ).toBe(true);
    const del = await km<Statuses>(signer.url, undefined, 'DELETE', '/eth/v1/keystores', {
      pubkeys: [pk],
    });
    expect(del.body.data[0]?.status).toBe('deleted');
    const targets = JSON.parse(del.body.slashing_protection).data[0].signed_attestations.map(
      (a: { target_epoch: string }) => a.target_epoch,
    );
    expect(targets).toEqual(['5']);
    expect((await vc.attest(6)).signed).toEqual([]);
  });

  it('the signer route: 404 for a key it does not hold, 412 for what the history forbids, text or JSON', async () => {
    const l = await lab();
    const signer = await l.signer('w3s');
    const k = await keystores(2);
    await km(signer.url, undefined, 'POST', '/eth/v1/keystores', {
      keystores: [k.keystores[0]],
      passwords: [k.passwords[0]],
    });
    const att = (s: number, t: number) => ({
      type: 'ATTESTATION',
      signingRoot: `0x${'77'.repeat(32)}`,
      attestation: { source: { epoch: String(s) }, target: { epoch: String(t) } },
    });
    const sign = (pk: string, body: unknown, accept = 'application/json') =>
      http<{ signature: string }>(signer.url, 'POST', `/api/v1/eth2/sign/${pk}`, body, { accept });
    expect((await sign(k.pubkeys[1] ?? '', att(1, 2))).status).toBe(404);
    const ok = await sign(k.pubkeys[0] ?? '', att(1, 2), 'text/plain');
    expect(ok.status).toBe(200);
    expect(String(ok.body)).toMatch(/^0x[0-9a-f]{192}$/);
    expect((await sign(k.pubkeys[0] ?? '', att(1, 2))).status).toBe(412);
    expect((await sign(k.pubkeys[0] ?? '', att(0, 3))).status).toBe(412);
    expect(
      (await sign(k.pubkeys[0] ?? '', { type: 'BLOCK_V2', signingRoot: `0x${'77'.repeat(32)}` }))
        .status,
    ).toBe(400);
    const json = await sign(k.pubkeys[0] ?? '', att(2, 3));
    expect(json.body.signature).toMatch(/^0x[0-9a-f]{192}$/);
    const keys = await http<string[]>(signer.url, 'GET', '/api/v1/eth2/publicKeys');
    expect(keys.body).toEqual([k.pubkeys[0]]);
  });
});
