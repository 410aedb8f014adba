// Faults an adversarial review of heartbeat proofs of possession found (issue 12, point 1;
// commit 0d9f8ab), kept as reproductions: each asserts the safe behaviour, and fails while the
// fault is there.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { proofMessage, signProof } from '../../src/keys/proof.js';
import type { Store } from '../../src/store/store.js';
import { http, MINUTE, startTestServer } from '../helpers.js';
import { allocate, allocateKeys, beat, prove, provenBeat } from '../support/heartbeats.js';

/** Keys the store has as this pod's: held by it, or recorded as reported by it. */
async function keysOf(store: Store, pod: string): Promise<string[]> {
  const found: string[] = [];
  for await (const r of store.keyRecords())
    if ((r.state === 'allocated' || r.state === 'reported') && r.pod === pod) found.push(r.pubkey);
  return found;
}

async function recordCount(store: Store): Promise<number> {
  let n = 0;
  for await (const _ of store.keyRecords()) n++;
  return n;
}

describe('break: --max-keys-per-pod and heartbeat claims', () => {
  it('P1 a pod cannot pass --max-keys-per-pod by proving a different set of keys at each heartbeat', async () => {
    // "A heartbeat never takes a pod past --max-keys-per-pod": but the room left is counted
    // from the keys this heartbeat lists, so the keys recorded as reported by the last one are
    // forgotten as soon as the pod stops listing them (an attacker, or keys gone from --out).
    const { url, store } = await startTestServer({ maxKeysPerPod: 2 });
    for (let i = 0; i < 3; i++) await provenBeat(url, 'a', [randomKey(), randomKey()]);
    expect((await keysOf(store, 'a')).length).toBeLessThanOrEqual(2);
  });

  it('P2 an allocation counts the keys a heartbeat recorded as the pod’s: never past --max-keys-per-pod', async () => {
    const { url, store } = await startTestServer({ maxKeysPerPod: 2 });
    const res = await provenBeat(url, 'a', [randomKey(), randomKey()]);
    expect(res.body.reported).toHaveLength(2); // the heartbeat used the pod's whole room
    const more = await http(url, 'POST', '/v1/pods/a/keys', { count: 2 });
    // Either refused, or a holds at most 2 keys in all: never 2 allocated + 2 reported.
    if (more.status === 200) expect((await keysOf(store, 'a')).length).toBeLessThanOrEqual(2);
    else expect(more.status).toBeGreaterThanOrEqual(400);
  });

  it('P3 one pod’s token cannot grow the store without bound, nor fill --max-total-keys, with keys it made up', async () => {
    // Random keys the attacker generated itself: it holds their secrets, so its proofs are
    // valid. Past its room each becomes a `conflict` record, kept forever, counted in the pool.
    const { url, store } = await startTestServer({ maxKeysPerPod: 2, maxTotalKeys: 6 });
    const key = await allocate(url, 'a', 2); // a's own, honest allocation
    expect(key).toHaveLength(2);
    for (let i = 0; i < 4; i++) await provenBeat(url, 'a', [randomKey(), randomKey()]);
    // At most a's own two keys and two reported: the other made-up keys leave no record.
    expect(await recordCount(store)).toBeLessThanOrEqual(4);
    const victim = await http(url, 'POST', '/v1/pods/victim/keys', { count: 2 });
    expect(victim.status).toBe(200);
  });
});

describe('break: the proof worker', () => {
  it('P4 one pod’s proofs do not load the shared worker without bound: proofs for its own keys are not checked, the rest within a budget', async () => {
    // One worker verifies every pod's proofs in arrival order (~50-150 ms each). Before, the
    // route checked every proof sent, even for keys the store records as the sender's, and a
    // pod could send --max-keys-per-pod proofs per heartbeat, --rate-limit heartbeats a minute.
    const { url } = await startTestServer({ maxKeysPerPod: 4, rateLimitPerMinute: 60 });
    const own = await allocate(url, 'attacker', 4);
    const { bootToken } = (await beat(url, 'attacker', [])).body;
    const junk = (pk: string) =>
      signProof(randomKey().secretKey, proofMessage(bootToken, 'default/attacker', pk));
    const ownProofs = Object.fromEntries(own.map((pk) => [pk, junk(pk)]));
    for (let i = 0; i < 3; i++) await beat(url, 'attacker', own, ownProofs);
    const claims = Array.from({ length: 4 }, () => randomKey().pubkey);
    for (let i = 0; i < 3; i++)
      await beat(url, 'attacker', claims, Object.fromEntries(claims.map((pk) => [pk, junk(pk)])));
    const metrics = (await http<string>(url, 'GET', '/metrics')).body;
    const count = (outcome: string) =>
      Number(
        new RegExp(`^pkm_heartbeat_proofs_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1] ?? 0,
      );
    expect(count('unneeded')).toBe(12); // three heartbeats of four proofs for its own keys
    expect(count('invalid')).toBe(4); // one budget of --max-keys-per-pod checks
    expect(count('over-budget')).toBe(8);
    // Another pod's budget is its own: its proof is checked, and holds.
    const lost = randomKey();
    const victim = await beat(url, 'victim', [lost.pubkey], prove(bootToken, 'victim', [lost]));
    expect(victim.body.reported).toEqual([lost.pubkey]);
  }, 60_000);
});

describe('break: heartbeat size', () => {
  it('P6 a heartbeat lists at most four times --max-keys-per-pod keys: each is read under the store’s one lock', async () => {
    // Before, a heartbeat could list 4096 pubkeys, though a pod never runs more than
    // --max-keys-per-pod, and one pod could send 60 a minute: allocations waited seconds.
    const { url, store } = await startTestServer({ maxKeysPerPod: 8 });
    const before = await store.rawEntries();
    const made = Array.from({ length: 33 }, () => `0x${randomBytes(48).toString('hex')}`);
    const res = await http<{ error: { code: string } }>(
      url,
      'POST',
      '/v1/pods/attacker/heartbeat',
      {
        pubkeys: made,
      },
    );
    expect([res.status, res.body.error.code]).toEqual([400, 'INVALID_BODY']);
    expect((await beat(url, 'attacker', made.slice(0, 32))).status).toBe(200);
    expect(await store.rawEntries()).toEqual(before);
  });
});

describe('break: a refused claim leaves the key to the next pod', () => {
  it('P5 a key a pod reported running (proof still to come) is not handed to another pod once the resync window is over', async () => {
    // The e2e agent test's story at realistic cost: the store was restored from a raw copy in
    // which x's two keys are cooled; pod p got them after the copy and runs them. After the
    // restart p's agent reports them; the store does not record them as p's, so the claim is
    // refused and changes nothing. p's agent now decrypts each keystore (EIP-2335 scrypt:
    // ~0.8 s a key here, ~50 s for 64 keys) and the server verifies each proof on one worker
    // (~0.15 s a proof here), behind every other pod's: well past the default 60 s resync
    // window. Once it is over, the keys are free for the next pod that asks, though the store
    // was told they run in p. Before 0d9f8ab the first report recorded them as reported at once.
    const { url, clock } = await startTestServer({ reuseDelayMs: 0, resyncWindowMs: MINUTE });
    const keys = await allocateKeys(url, 'x', 2);
    await http(url, 'DELETE', '/v1/pods/x/keys');
    const pks = keys.map((k) => k.pubkey);
    const report = await beat(url, 'p', pks);
    expect(report.body.refused).toEqual(pks); // p's agent is proving possession now
    clock.advance(MINUTE); // the resync window is over before its proofs are in
    const q = await allocate(url, 'q', 2);
    const proven = await provenBeat(url, 'p', keys);
    expect(q.filter((pk) => pks.includes(pk))).toEqual([]); // q must not run p's keys
    expect(proven.body.conflicts).toEqual([]);
  });
});
