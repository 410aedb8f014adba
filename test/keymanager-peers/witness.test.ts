// The holdings witness catches what it is there to catch: a key in two places, a key signable
// through two VCs, a signature by a peer that did not hold the key, a double vote; and it stays
// quiet for a move done in the right order with the protection carried over.
import { describe, expect, it } from 'vitest';
import { ic, keystores, type Statuses } from '../support/keymanager-fixture.js';
import {
  assertNoKeyInTwoPlaces,
  findViolations,
  holdersOf,
  type Stamped,
} from '../support/keymanager-peers/index.js';
import { km, lab } from './setup.js';

const PATH = '/eth/v1/keystores';
const kinds = (events: readonly Stamped[]) =>
  findViolations(events).map((v) => `${v.kind} ${v.peers.join('+')}`);

describe('the holdings witness', () => {
  it('a move in order (delete, then import with the returned protection) is clean, and the new VC does not sign the old epochs again', async () => {
    const l = await lab();
    const [a, b] = [await l.vc('vc-a'), await l.vc('vc-b')];
    const k = await keystores(2);
    const imp = { keystores: k.keystores, passwords: k.passwords };
    await km(a.url, a.token, 'POST', PATH, imp);
    expect((await a.attest(10)).signed).toHaveLength(2);
    const del = await km<Statuses>(a.url, a.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
    await km(b.url, b.token, 'POST', PATH, {
      ...imp,
      slashing_protection: del.body.slashing_protection,
    });
    expect((await b.attest(10)).refused).toHaveLength(2);
    expect((await b.attest(11)).signed).toHaveLength(2);
    expect(() => assertNoKeyInTwoPlaces(l.witness)).not.toThrow();
    expect(holdersOf(l.witness.read(), k.pubkeys[0] ?? '')).toEqual({
      places: ['vc-b'],
      signers: ['vc-b'],
    });
  });

  it('fails when a key is imported into a second VC before its delete from the first', async () => {
    const l = await lab();
    const [a, b] = [await l.vc('vc-a'), await l.vc('vc-b')];
    const k = await keystores(1);
    const imp = { keystores: k.keystores, passwords: k.passwords };
    await km(a.url, a.token, 'POST', PATH, imp);
    await km(b.url, b.token, 'POST', PATH, imp);
    await km(a.url, a.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
    // Both held it for a moment only, and neither signed: still caught.
    expect(kinds(l.witness.read())).toEqual(['two-places vc-a+vc-b', 'two-signers vc-a+vc-b']);
    expect(() => assertNoKeyInTwoPlaces(l.witness)).toThrow(/two-places .* vc-a, vc-b/);
    expect(holdersOf(l.witness.read(), k.pubkeys[0] ?? '').places).toEqual(['vc-b']);
  });

  it('fails when two VCs point one remote key at a signer that holds it, not while the signer lacks it', async () => {
    const l = await lab();
    const [a, b, w3s] = [await l.vc('vc-a'), await l.vc('vc-b'), await l.signer('w3s')];
    const k = await keystores(1);
    const reg = { remote_keys: [{ pubkey: k.pubkeys[0] ?? '', url: w3s.url }] };
    await km(a.url, a.token, 'POST', '/eth/v1/remotekeys', reg);
    await km(b.url, b.token, 'POST', '/eth/v1/remotekeys', reg);
    expect(findViolations(l.witness.read())).toEqual([]); // registrations alone sign nothing
    await km(w3s.url, undefined, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
    expect(kinds(l.witness.read())).toEqual(['two-signers vc-a+vc-b']);
  });

  it('fails when a VC keeps a key locally that a signer also holds', async () => {
    const l = await lab();
    const [a, w3s] = [await l.vc('vc-a'), await l.signer('w3s')];
    const k = await keystores(1);
    const imp = { keystores: k.keystores, passwords: k.passwords };
    await km(a.url, a.token, 'POST', PATH, imp);
    await km(w3s.url, undefined, 'POST', PATH, imp);
    expect(kinds(l.witness.read())).toEqual(['two-places vc-a+w3s']);
  });

  it('catches a double vote when a key moves without its protection, though the holdings never overlapped', async () => {
    const l = await lab();
    const [a, b] = [await l.vc('vc-a'), await l.vc('vc-b')];
    const k = await keystores(1);
    const imp = { keystores: k.keystores, passwords: k.passwords };
    await km(a.url, a.token, 'POST', PATH, imp);
    await a.attest(30);
    await km(a.url, a.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
    await km(b.url, b.token, 'POST', PATH, { ...imp, slashing_protection: JSON.stringify(ic([])) });
    await b.attest(30);
    expect(kinds(l.witness.read())).toEqual(['double-vote vc-b']);
  });

  it('reads kill -9 and restarts: a dead peer holds what its data dir has until a snapshot or a wipe says otherwise', () => {
    const pk = `0x${'a1'.repeat(48)}`;
    let t = 0n;
    const at = <E extends object>(e: E) => ({ ...e, t: ++t, seq: Number(t) });
    const events: Stamped[] = [
      at({ kind: 'hold', peer: 'vc-a', role: 'vc', pubkey: pk } as const),
      // vc-a killed here; it recorded no release. vc-b gets the key: two places.
      at({ kind: 'hold', peer: 'vc-b', role: 'vc', pubkey: pk } as const),
      // vc-a restarts from a data dir without the key (killed between write and answer).
      at({ kind: 'snapshot', peer: 'vc-a', role: 'vc', local: [], remote: [] } as const),
      at({ kind: 'release', peer: 'vc-b', role: 'vc', pubkey: pk } as const),
      at({ kind: 'hold', peer: 'vc-c', role: 'vc', pubkey: pk } as const),
      at({ kind: 'wiped', peer: 'vc-c' } as const),
      at({ kind: 'signed', peer: 'vc-c', pubkey: pk, target: 3, root: '0x01' } as const),
    ];
    expect(kinds(events)).toEqual([
      'two-places vc-a+vc-b',
      'two-signers vc-a+vc-b',
      'signed-unheld vc-c',
    ]);
    expect(holdersOf(events, pk, 2n).signers).toEqual(['vc-a', 'vc-b']);
    expect(holdersOf(events, pk, 3n).signers).toEqual(['vc-b']);
  });
});
