// The fake VC's per-key routes (fee_recipient.yaml, graffiti.yaml, gas_limit.yaml) against the
// spec: defaults until set, 202 on POST, 204 on DELETE, 400 for bad values, 404 for a key it
// does not have; and the settings go with the key when it is deleted (Lighthouse #5402), so a
// mover must carry them.
import { describe, expect, it } from 'vitest';
import { keystores } from '../support/keymanager-fixture.js';
import { km, lab } from './setup.js';

type Data = { data: Record<string, string> };

describe('fake VC: fee recipient, graffiti, gas limit', () => {
  it('answers defaults, takes new values, drops them on DELETE', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a', { defaults: { gasLimit: '36000000' } });
    const k = await keystores(1);
    const pk = k.pubkeys[0] ?? '';
    await km(vc.url, vc.token, 'POST', '/eth/v1/keystores', {
      keystores: k.keystores,
      passwords: k.passwords,
    });
    const base = `/eth/v1/validator/${pk}`;
    const fee = await km<Data>(vc.url, vc.token, 'GET', `${base}/feerecipient`);
    expect(fee.body.data).toEqual({ pubkey: pk, ethaddress: `0x${'ee'.repeat(20)}` });
    expect((await km<Data>(vc.url, vc.token, 'GET', `${base}/gas_limit`)).body.data.gas_limit).toBe(
      '36000000',
    );
    const addr = `0x${'1f'.repeat(20)}`;
    expect(
      (await km(vc.url, vc.token, 'POST', `${base}/feerecipient`, { ethaddress: addr })).status,
    ).toBe(202);
    expect(
      (await km(vc.url, vc.token, 'POST', `${base}/graffiti`, { graffiti: 'pkm moved me' })).status,
    ).toBe(202);
    expect(
      (await km(vc.url, vc.token, 'POST', `${base}/gas_limit`, { gas_limit: '45000000' })).status,
    ).toBe(202);
    expect(
      (await km<Data>(vc.url, vc.token, 'GET', `${base}/feerecipient`)).body.data.ethaddress,
    ).toBe(addr);
    expect((await km<Data>(vc.url, vc.token, 'GET', `${base}/graffiti`)).body.data.graffiti).toBe(
      'pkm moved me',
    );
    expect((await km<Data>(vc.url, vc.token, 'GET', `${base}/gas_limit`)).body.data.gas_limit).toBe(
      '45000000',
    );
    expect((await km(vc.url, vc.token, 'DELETE', `${base}/graffiti`)).status).toBe(204);
    expect((await km<Data>(vc.url, vc.token, 'GET', `${base}/graffiti`)).body.data.graffiti).toBe(
      '',
    );
  });

  it('refuses bad values (400) and unknown keys (404)', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(1);
    await km(vc.url, vc.token, 'POST', '/eth/v1/keystores', {
      keystores: k.keystores,
      passwords: k.passwords,
    });
    const base = `/eth/v1/validator/${k.pubkeys[0]}`;
    const bad: Array<[string, unknown]> = [
      ['feerecipient', { ethaddress: `0x${'00'.repeat(20)}` }],
      ['feerecipient', { ethaddress: '0x12' }],
      ['graffiti', { graffiti: 'x'.repeat(33) }],
      ['gas_limit', { gas_limit: 30000000 }],
      ['gas_limit', { gas_limit: '-1' }],
    ];
    for (const [route, body] of bad)
      expect((await km(vc.url, vc.token, 'POST', `${base}/${route}`, body, true)).status).toBe(400);
    const other = `/eth/v1/validator/0x${'b2'.repeat(48)}`;
    for (const route of ['feerecipient', 'graffiti', 'gas_limit']) {
      expect((await km(vc.url, vc.token, 'GET', `${other}/${route}`)).status).toBe(404);
      expect((await km(vc.url, vc.token, 'DELETE', `${other}/${route}`)).status).toBe(404);
    }
    expect((await km(vc.url, vc.token, 'GET', '/eth/v1/validator/0x12/graffiti')).status).toBe(400);
  });

  it('a deleted and re-imported key is back to the defaults; settings survive a restart', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(1);
    const imp = { keystores: k.keystores, passwords: k.passwords };
    const path = `/eth/v1/validator/${k.pubkeys[0]}/graffiti`;
    await km(vc.url, vc.token, 'POST', '/eth/v1/keystores', imp);
    await km(vc.url, vc.token, 'POST', path, { graffiti: 'kept' });
    await vc.stop();
    const again = await l.vc('vc-a');
    expect((await km<Data>(again.url, again.token, 'GET', path)).body.data.graffiti).toBe('kept');
    await km(again.url, again.token, 'DELETE', '/eth/v1/keystores', { pubkeys: k.pubkeys });
    expect((await km(again.url, again.token, 'GET', path)).status).toBe(404);
    await km(again.url, again.token, 'POST', '/eth/v1/keystores', imp);
    expect((await km<Data>(again.url, again.token, 'GET', path)).body.data.graffiti).toBe('');
  });
});
