// `pkm agent --keymanager-url` against the fake validator clients and Web3Signer (issue 16,
// points 1, 2, 4, 5 and 6): the agents keep their VCs equal to the server's assignments; a move
// carries each key's history and settings; a VC that loses a key's history (Prysm #17408) lets
// no key go at once; remote keys move through the signers. The witness checks that no key is
// ever held by two peers at the same instant.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalKeys, RemoteKeys } from '../../src/client/key-homes.js';
import { KeymanagerAgent } from '../../src/client/keymanager-agent.js';
import { KeymanagerClient } from '../../src/client/keymanager-client.js';
import type { KdfCosts } from '../../src/keys/keystore.js';
import { createLogger } from '../../src/log.js';
import { http, onCleanup, startTestServer, tempDir } from '../helpers.js';
import {
  assertNoKeyInTwoPlaces,
  FAKE_GENESIS,
  FAKE_ROOT,
  type FakeSigner,
  type FakeVc,
  type FakeVcOptions,
  startFakeSigner,
  startFakeVc,
  Witness,
} from '../support/keymanager-peers/index.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const FEE = `0x${'5a'.repeat(20)}`;

interface Pod {
  readonly vc: FakeVc;
  readonly signer?: FakeSigner;
  readonly vcApi: KeymanagerClient;
  readonly agent: KeymanagerAgent;
}

async function world() {
  const s = await startTestServer({
    beacon: { genesisTime: FAKE_GENESIS, genesisValidatorsRoot: FAKE_ROOT },
  });
  s.clock.ms = Date.now(); // the fakes attest on the real clock: fences at the same epochs
  const dir = await tempDir();
  const witnessFile = join(dir, 'witness.jsonl');
  const witness = new Witness(witnessFile);
  const log = createLogger('silent');

  async function pod(
    name: string,
    opts: { remote?: boolean; vc?: Partial<FakeVcOptions> } = {},
  ): Promise<Pod> {
    const vc = await startFakeVc({
      name: `vc-${name}`,
      witnessFile,
      dataDir: join(dir, `vc-${name}`),
      ...opts.vc,
    });
    onCleanup(() => vc.stop());
    const vcApi = new KeymanagerClient({
      url: new URL(vc.url),
      tokenFile: vc.tokenFile,
      name: 'the validator client',
    });
    let signer: FakeSigner | undefined;
    let home: LocalKeys | RemoteKeys = new LocalKeys(vcApi);
    if (opts.remote) {
      const started = await startFakeSigner({
        name: `w3s-${name}`,
        witnessFile,
        dataDir: join(dir, `w3s-${name}`),
      });
      onCleanup(() => started.stop());
      signer = started;
      const signerApi = new KeymanagerClient({
        url: new URL(started.url),
        name: 'the remote signer',
      });
      home = new RemoteKeys(vcApi, signerApi, started.url);
    }
    const agent = new KeymanagerAgent(
      {
        connection: { server: new URL(s.url) },
        pod: name,
        namespace: 'default',
        home,
        vc: vcApi,
        passwordFile: join(dir, `${name}-password.txt`),
        kdf: 'pbkdf2',
        concurrency: 2,
        costs: CHEAP,
      },
      log,
    );
    return { vc, vcApi, agent, ...(signer ? { signer } : {}) };
  }

  const put = (pod: string, count: number) => http(s.url, 'PUT', `/v1/pods/${pod}/keys`, { count });
  const move = async (from: string, to: string, count: number) =>
    (await http<{ keys: string[] }>(s.url, 'POST', '/v1/moves', { from, to, count })).body.keys;
  return { s, witness, pod, put, move };
}

const local = (p: Pod) => p.vc.holdings().local.sort();

describe('pkm agent --keymanager-url (in-process, fake VCs)', () => {
  it('imports what the server assigns; a move deletes from one VC, reports, and imports into the other, with history and settings', async () => {
    const w = await world();
    const a = await w.pod('a');
    const b = await w.pod('b');
    expect((await w.put('a', 3)).status).toBe(200);
    expect((await w.put('b', 1)).status).toBe(200);
    await a.agent.pass();
    await b.agent.pass();
    const aKeys = [...(await w.s.allocator.podKeys('a'))].sort();
    expect(local(a)).toEqual(aKeys);
    expect(local(b)).toHaveLength(1);

    // a's keys sign (history in its slashing database); one gets a fee recipient on a's VC.
    const signed = await a.vc.attest();
    expect(signed.signed).toHaveLength(3);
    const moving = await w.move('a', 'b', 1);
    const [key = ''] = moving;
    await a.vcApi.setSetting(key, 'feeRecipient', FEE);
    await a.vcApi.setSetting(key, 'graffiti', 'pkm moved me');

    // b's agent first: the key is not b's until a's VC deleted it.
    expect((await b.agent.pass()).imported).toEqual([]);
    const first = await a.agent.pass();
    expect(first.removals).toEqual([{ pubkey: key, outcome: 'moved', to: 'b' }]);
    expect(local(a)).not.toContain(key);
    const second = await b.agent.pass();
    expect(second.imported).toEqual([key]);
    expect(local(b)).toContain(key);
    expect(await b.vcApi.setting(key, 'feeRecipient')).toBe(FEE);
    expect(await b.vcApi.setting(key, 'graffiti')).toBe('pkm moved me');

    // The history came along: b's VC refuses the epoch a signed, signs the next.
    const again = await b.vc.attest(signed.epoch);
    expect(again.refused.map((r) => r.pubkey)).toContain(key);
    const next = await b.vc.attest(signed.epoch + 1);
    expect(next.signed.map((x) => x.pubkey)).toContain(key);
    // Steady state: another pass changes nothing.
    expect(await a.agent.pass()).toEqual({ imported: [], removals: [], foreign: [] });
    assertNoKeyInTwoPlaces(w.witness);
  });

  it('a smaller count frees keys with proof; a VC that returns no history for a key with history on record (Prysm #17408) lets it cool instead', async () => {
    const w = await world();
    const a = await w.pod('a');
    const prysm = await w.pod('p', { vc: { emptyDeleteProtection: 'no-entries' } });
    await w.put('a', 2);
    await w.put('p', 1);
    await a.agent.pass();
    await prysm.agent.pass();
    await a.vc.attest();
    // a key with history moves from a to the Prysm-like VC, with proof: its record has history.
    const [key = ''] = await w.move('a', 'p', 1);
    await a.agent.pass();
    await prysm.agent.pass();
    expect(local(prysm)).toContain(key);
    // Back from it: its DELETE answers no history, and the key had some: no proof.
    await w.move('p', 'a', 1).then((keys) => expect(keys).toHaveLength(1));
    const back = await prysm.agent.pass();
    expect(back.removals.map((r) => r.outcome)).toEqual(['cooling']);
    expect(back.removals[0]?.why).toContain('#17408');
    await a.agent.pass();
    expect([...local(a), ...local(prysm)]).not.toContain(back.removals[0]?.pubkey);
    expect(await w.s.store.getKey(back.removals[0]?.pubkey ?? '')).toMatchObject({
      state: 'cooling',
    });
    // A plain smaller count: a's last key (it signed) is freed with proof, at once.
    expect(local(a)).toHaveLength(1);
    await w.put('a', 0);
    const shrink = await a.agent.pass();
    expect(shrink.removals.map((r) => r.outcome)).toEqual(['freed']);
    expect(local(a)).toEqual([]);
    assertNoKeyInTwoPlaces(w.witness);
  });

  it('with --remote-signer-url: keys go into the signer and are registered with the VC; a move unregisters, deletes from the signer, and lands in the other pair', async () => {
    const w = await world();
    const a = await w.pod('a', { remote: true });
    const b = await w.pod('b', { remote: true });
    await w.put('a', 2);
    await w.put('b', 1);
    await a.agent.pass();
    await b.agent.pass();
    expect(a.vc.holdings().local).toEqual([]);
    expect(a.vc.holdings().remote.map((r) => r.url)).toEqual([a.signer?.url, a.signer?.url]);
    const signed = await a.vc.attest();
    expect(signed.signed).toHaveLength(2);
    const [key = ''] = await w.move('a', 'b', 1);
    const removed = await a.agent.pass();
    expect(removed.removals).toEqual([{ pubkey: key, outcome: 'moved', to: 'b' }]);
    expect(a.vc.holdings().remote.map((r) => r.pubkey)).not.toContain(key);
    await b.agent.pass();
    expect(b.vc.holdings().remote.map((r) => r.pubkey)).toContain(key);
    // The signer's history came along: b's signer refuses what a's signed.
    expect((await b.vc.attest(signed.epoch)).refused.map((r) => r.pubkey)).toContain(key);
    expect((await b.vc.attest(signed.epoch + 1)).signed.map((x) => x.pubkey)).toContain(key);
    assertNoKeyInTwoPlaces(w.witness);
  });
});
