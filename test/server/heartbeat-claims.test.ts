// Heartbeat claims need a proof of possession (DESIGN.md "Safety rules"): a pod that reports a
// key the store does not record as its own, without a valid proof, changes nothing.
import { describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { bls } from '../../src/keys/bls-backend.js';
import { proofMessage, signProof } from '../../src/keys/proof.js';
import { http, MINUTE, startTestServer } from '../helpers.js';
import { mnemonic } from '../support/allocator.js';
import { allocate, allocateKeys, beat, prove, provenBeat } from '../support/heartbeats.js';

const metric = async (url: string, name: string) =>
  Number(
    new RegExp(`^${name} (\\d+)$`, 'm').exec(
      (await http<string>(url, 'GET', '/metrics')).body,
    )?.[1],
  );

describe('heartbeat claims without proof', () => {
  it('cannot steal a released key: the claim is refused, nothing changes, and the key is held from every pod while a proof could still come', async () => {
    const { url, store, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const [k] = await allocate(url, 'validator-0', 1);
    if (!k) throw new Error('setup');
    await http(url, 'DELETE', '/v1/pods/validator-0/keys'); // its own release: a confirmed stop
    const before = await store.rawEntries();
    const res = await beat(url, 'attacker-7', [k]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ reclaimed: [], conflicts: [], reported: [], refused: [k] });
    expect(await store.rawEntries()).toEqual(before);
    expect(await metric(url, 'pkm_heartbeat_refused_total')).toBe(1);
    expect(await allocate(url, 'attacker-7', 1)).not.toContain(k);
    // Held from validator-0 too: if attacker-7 did run it, handing it back would make two.
    expect(await allocate(url, 'validator-0', 1)).not.toContain(k);
    await http(url, 'DELETE', '/v1/pods/validator-0/keys');
    clock.advance(20 * MINUTE); // the hold is over (10 minutes, or the reuse delay)
    expect(await allocate(url, 'validator-1', 2)).toContain(k);
  });

  it("cannot push another pod's key into conflict", async () => {
    const { url, store } = await startTestServer();
    const keys = await allocate(url, 'victim', 2);
    const before = await store.rawEntries();
    expect((await beat(url, 'attacker', keys)).body).toMatchObject({
      conflicts: [],
      refused: keys,
    });
    expect(await store.rawEntries()).toEqual(before);
    expect((await http(url, 'GET', '/v1/pods/victim/keys')).body).toMatchObject({
      pubkeys: keys,
    });
  });

  it('refuse forged proofs: by another key, for another pod, for another boot token, under Ethereum’s DST', async () => {
    const { url, store, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const [victim] = await allocateKeys(url, 'victim', 1);
    if (!victim) throw new Error('setup');
    await http(url, 'DELETE', '/v1/pods/victim/keys');
    clock.advance(MINUTE); // free for anyone now: a claim would record it as the attacker's
    const { bootToken } = (await beat(url, 'attacker', [])).body;
    const own = randomKey();
    const pk = victim.pubkey;
    const message = proofMessage(bootToken, 'default/attacker', pk);
    const forgeries = [
      signProof(own.secretKey, message), // the attacker's own key
      prove(bootToken, 'victim', [victim])[pk] ?? '', // a proof the victim made, replayed
      signProof(victim.secretKey, proofMessage('an-old-boot-token', 'default/attacker', pk)),
      `0x${Buffer.from(bls.sign(victim.secretKey, message)).toString('hex')}`,
    ];
    const before = await store.rawEntries();
    for (const proof of forgeries) {
      const res = await beat(url, 'attacker', [pk], { [pk]: proof });
      expect(res.body).toMatchObject({ reported: [], conflicts: [], refused: [pk] });
    }
    expect(await store.rawEntries()).toEqual(before);
    expect(await metric(url, 'pkm_heartbeat_refused_total')).toBe(forgeries.length);
  });

  it('refuse malformed, stray and excess proofs with 400, changing nothing', async () => {
    const { url, store } = await startTestServer({ maxKeysPerPod: 2 });
    const keys = await allocateKeys(url, 'a', 2);
    const { bootToken } = (await beat(url, 'b', [])).body;
    const proofs = prove(bootToken, 'b', keys);
    const extra = randomKey();
    const before = await store.rawEntries();
    const pks = keys.map((k) => k.pubkey);
    const bodies = [
      { pubkeys: pks, proofs: { [pks[0] ?? '']: '0x1234' } },
      { pubkeys: pks, proofs: [] },
      { pubkeys: [pks[0]], proofs }, // a proof for a key not reported
      {
        pubkeys: [...pks, extra.pubkey],
        proofs: { ...proofs, ...prove(bootToken, 'b', [extra]) }, // more than --max-keys-per-pod
      },
    ];
    for (const body of bodies) {
      const res = await http<{ error: { code: string } }>(
        url,
        'POST',
        '/v1/pods/b/heartbeat',
        body,
      );
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('INVALID_BODY');
    }
    expect(await store.rawEntries()).toEqual(before);
  });

  it('are rate-limited like allocations', async () => {
    const { url } = await startTestServer({ rateLimitPerMinute: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await beat(url, 'a', [])).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });
});

describe('heartbeat claims with proof', () => {
  it('a key another pod held within the reuse delay is a conflict, never the reporter’s', async () => {
    const { url } = await startTestServer({ reuseDelayMs: MINUTE });
    const [k] = await allocateKeys(url, 'a', 1);
    if (!k) throw new Error('setup');
    await http(url, 'DELETE', '/v1/pods/a/keys');
    const res = await provenBeat(url, 'b', [k]);
    expect(res.body).toMatchObject({ conflicts: [k.pubkey], reported: [], reclaimed: [] });
    expect(await allocate(url, 'a', 1)).not.toContain(k.pubkey);
    expect(await allocate(url, 'b', 1)).not.toContain(k.pubkey);
  });

  it('never take a pod past --max-keys-per-pod: a proven key past it is a conflict if the store could hand it out, refused if the store never had it', async () => {
    const { url, store, clock } = await startTestServer({ maxKeysPerPod: 2, reuseDelayMs: MINUTE });
    const own = await allocateKeys(url, 'a', 2);
    const [spare] = await allocateKeys(url, 'x', 1);
    if (!spare) throw new Error('setup');
    await http(url, 'DELETE', '/v1/pods/x/keys');
    clock.advance(MINUTE); // free for anyone: a running copy in a must keep it from everyone
    const lost = randomKey(); // a key the store never had, which a also runs
    const { bootToken } = (await beat(url, 'a', [])).body;
    const pks = [...own, spare, lost].map((k) => k.pubkey);
    const res = await beat(url, 'a', pks, prove(bootToken, 'a', [spare, lost])); // its own need none
    expect(res.body).toMatchObject({
      reported: [],
      conflicts: [spare.pubkey],
      refused: [lost.pubkey],
    });
    expect(await store.getKey(lost.pubkey)).toBeUndefined();
    expect((await http(url, 'GET', '/v1/pods/a/keys')).body).toMatchObject({
      pubkeys: own.map((k) => k.pubkey),
    });
  });

  it('count the keys reported by a pod against --max-keys-per-pod, across heartbeats and allocations', async () => {
    const { url } = await startTestServer({ maxKeysPerPod: 2 });
    const first = await provenBeat(url, 'a', [randomKey()]);
    expect(first.body.reported).toHaveLength(1);
    const second = await provenBeat(url, 'a', [randomKey(), randomKey()]); // another set
    expect(second.body.reported).toHaveLength(1);
    expect(second.body.refused).toHaveLength(1);
    const more = await http<{ error: { code: string } }>(url, 'POST', '/v1/pods/a/keys', {
      count: 1,
    });
    expect([more.status, more.body.error.code]).toEqual([400, 'COUNT_OUT_OF_RANGE']);
  });

  it('with a mnemonic, an unproven report of a derived key moves the next index past it and records nothing else; with a proof it is the reporter’s', async () => {
    const { url, store } = await startTestServer({ keySource: mnemonic });
    await store.bindKeySource(mnemonic.fingerprint);
    const ahead = mnemonic.pubkeyAt?.(3) ?? '';
    const res = await beat(url, 'b', [ahead]);
    expect(res.body).toMatchObject({ reported: [], refused: [ahead] });
    expect(store.nextKeyIndex()).toBe(4);
    expect(await store.getKey(ahead)).toBeUndefined();
    // Nobody is handed that index: the next key derived is index 4.
    expect(await allocate(url, 'c', 1)).toEqual([mnemonic.pubkeyAt?.(4)]);
    const [derived] = await mnemonic.make(1, 3);
    if (!derived) throw new Error('setup');
    const proven = await provenBeat(url, 'b', [derived]);
    expect(proven.body).toMatchObject({ reported: [ahead], refused: [] });
    expect(await store.getKey(ahead)).toMatchObject({ state: 'reported', pod: 'b' });
  });
});
