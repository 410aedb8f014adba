// The fakes as child processes: a VC killed with kill -9 comes back from its data dir with its
// token, keys and history; one killed in the middle of an import holds exactly what its data dir
// kept, and the witness agrees; a VC on a timer attests by itself; a signer in a child signs for
// a VC in another.
import { describe, expect, it } from 'vitest';
import { onCleanup } from '../helpers.js';
import { keystores, type Statuses } from '../support/keymanager-fixture.js';
import {
  assertNoKeyInTwoPlaces,
  type ChildPeer,
  holdersOf,
  spawnFakeSigner,
  spawnFakeVc,
} from '../support/keymanager-peers/index.js';
import { sleep } from '../support/keymanager-peers/lock.js';
import { km, lab } from './setup.js';

const PATH = '/eth/v1/keystores';
const spawned = async (p: Promise<ChildPeer>) => {
  const peer = await p;
  onCleanup(() => peer.stop());
  return peer;
};

describe('fake peers in child processes', () => {
  it('a VC killed with kill -9 restarts from its data dir: same token, keys and history', async () => {
    const l = await lab();
    const opts = l.options('vc-a');
    const vc = await spawned(spawnFakeVc(opts));
    const k = await keystores(2);
    await km(vc.url, vc.token, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
    expect((await vc.attest(8)).signed).toHaveLength(2);
    await vc.kill9();
    await expect(fetch(`${vc.url}/eth/v1/keystores`)).rejects.toThrow();
    expect(holdersOf(l.witness.read(), k.pubkeys[0] ?? '').places).toEqual(['vc-a']);
    const again = await spawned(spawnFakeVc({ ...opts, port: vc.port }));
    expect(again.url).toBe(vc.url);
    expect(again.token).toBe(vc.token);
    expect((await again.holdings()).local.sort()).toEqual([...k.pubkeys].sort());
    const report = await again.attest(8);
    expect(report.signed).toEqual([]);
    expect((await again.attest(9)).signed).toHaveLength(2);
    assertNoKeyInTwoPlaces(l.witness);
  });

  it('killed in the middle of an import, a VC holds after restart what its data dir kept, and the witness agrees', async () => {
    const l = await lab();
    const opts = { ...l.options('vc-a'), stepDelayMs: 400 };
    const vc = await spawned(spawnFakeVc(opts));
    const k = await keystores(3);
    const pending = km(vc.url, vc.token, 'POST', PATH, {
      keystores: k.keystores,
      passwords: k.passwords,
    }).catch(() => undefined);
    // Killed as soon as the first key is witnessed held: before or after its write to disk.
    const deadline = Date.now() + 10_000;
    while (!l.witness.read().some((e) => e.kind === 'hold') && Date.now() < deadline)
      await sleep(5);
    await vc.kill9();
    expect(await pending).toBeUndefined(); // no answer came
    const again = await spawned(spawnFakeVc(opts));
    const held = (await again.holdings()).local;
    expect(held.length).toBeLessThan(2);
    const events = l.witness.read();
    for (const pk of k.pubkeys)
      expect(holdersOf(events, pk).places).toEqual(held.includes(pk) ? ['vc-a'] : []);
  });

  it('a VC on a timer attests by itself, and its DELETE then returns what it signed', async () => {
    const l = await lab();
    const genesisTime = Math.floor(Date.now() / 1000) - 60;
    const vc = await spawned(
      spawnFakeVc({ ...l.options('vc-a'), slotMs: 5, genesisTime, attestEveryMs: 100 }),
    );
    const k = await keystores(1);
    await km(vc.url, vc.token, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
    const deadline = Date.now() + 10_000;
    while (!l.witness.read().some((e) => e.kind === 'signed') && Date.now() < deadline)
      await sleep(100);
    const del = await km<Statuses>(vc.url, vc.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
    expect(del.body.data[0]?.status).toBe('deleted');
    const signed = JSON.parse(del.body.slashing_protection).data[0].signed_attestations;
    expect(signed.length).toBeGreaterThan(0);
    const after = l.witness.read().length;
    await sleep(300);
    expect(l.witness.read().filter((e) => e.kind === 'signed').length).toBe(
      l.witness
        .read()
        .slice(0, after)
        .filter((e) => e.kind === 'signed').length,
    );
  });

  it('a VC child signs through a signer child; a killed signer signs nothing until it is back on its port', async () => {
    const l = await lab();
    const signerOpts = l.options('w3s');
    const w3s = await spawned(spawnFakeSigner(signerOpts));
    const vc = await spawned(spawnFakeVc(l.options('vc-a')));
    const k = await keystores(1);
    await km(w3s.url, undefined, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
    await km(vc.url, vc.token, 'POST', '/eth/v1/remotekeys', {
      remote_keys: [{ pubkey: k.pubkeys[0] ?? '', url: w3s.url }],
    });
    expect((await vc.attest(2)).signed).toHaveLength(1);
    await w3s.kill9();
    expect((await vc.attest(3)).refused[0]?.reason).toMatch(/unreachable/);
    await spawned(spawnFakeSigner({ ...signerOpts, port: w3s.port }));
    expect((await vc.attest(4)).signed).toHaveLength(1);
    expect(holdersOf(l.witness.read(), k.pubkeys[0] ?? '')).toEqual({
      places: ['w3s'],
      signers: ['vc-a'],
    });
    assertNoKeyInTwoPlaces(l.witness);
  });
});
