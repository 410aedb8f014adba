// Adversarial review of issue 16: the old validator client is killed (kill -9) in the middle of
// the agent's DELETE, or right after a move with proof, and restarted from its data dir. The
// witness must see no key in two VCs and no double vote, and the key must land in one VC.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalKeys } from '../../src/client/key-homes.js';
import { KeymanagerAgent } from '../../src/client/keymanager-agent.js';
import { KeymanagerClient } from '../../src/client/keymanager-client.js';
import type { KdfCosts } from '../../src/keys/keystore.js';
import { createLogger } from '../../src/log.js';
import { checkStore } from '../../src/store/check.js';
import { http, onCleanup, startTestServer, tempDir } from '../helpers.js';
import {
  assertNoKeyInTwoPlaces,
  type ChildPeer,
  FAKE_GENESIS,
  FAKE_ROOT,
  spawnFakeVc,
  Witness,
} from '../support/keymanager-peers/index.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the old VC killed and restarted from its data dir', () => {
  for (const killAfterMs of [5, 60, 150, 400]) {
    it(`kill -9 ${killAfterMs} ms into the old VC's delete: the key ends in one VC, never two`, async () => {
      const s = await startTestServer({
        beacon: { genesisTime: FAKE_GENESIS, genesisValidatorsRoot: FAKE_ROOT },
      });
      s.clock.ms = Date.now();
      const dir = await tempDir();
      const witnessFile = join(dir, 'witness.jsonl');
      const log = createLogger('silent');
      const vcs = new Map<string, ChildPeer>();
      const start = async (name: string, port?: number) => {
        const vc = await spawnFakeVc({
          name: `vc-${name}`,
          witnessFile,
          dataDir: join(dir, `vc-${name}`),
          stepDelayMs: 100,
          ...(port === undefined ? {} : { port }),
        });
        onCleanup(() => vc.stop());
        vcs.set(name, vc);
        return vc;
      };
      const agentFor = (name: string, vc: ChildPeer) => {
        const api = new KeymanagerClient({
          url: new URL(vc.url),
          tokenFile: vc.tokenFile ?? '',
          name: 'the validator client',
        });
        return new KeymanagerAgent(
          {
            connection: { server: new URL(s.url) },
            pod: name,
            namespace: 'default',
            home: new LocalKeys(api),
            vc: api,
            passwordFile: join(dir, `${name}-password.txt`),
            kdf: 'pbkdf2',
            concurrency: 2,
            costs: CHEAP,
          },
          log,
        );
      };
      const vcA = await start('a');
      const vcB = await start('b');
      let agentA = agentFor('a', vcA);
      const agentB = agentFor('b', vcB);
      expect((await http(s.url, 'PUT', '/v1/pods/a/keys', { count: 3 })).status).toBe(200);
      expect((await http(s.url, 'PUT', '/v1/pods/b/keys', { count: 1 })).status).toBe(200);
      await agentA.pass();
      await agentB.pass();
      const epoch = () => Math.floor((Date.now() / 1000 - FAKE_GENESIS) / (12 * 32));
      await vcA.attest(epoch());
      await vcB.attest(epoch());
      const moved = (
        await http<{ keys: string[] }>(s.url, 'POST', '/v1/moves', { from: 'a', to: 'b', count: 2 })
      ).body.keys;
      expect(moved).toHaveLength(2);
      // The old VC dies in the middle of the delete.
      const pass = agentA.pass().catch((err: unknown) => err);
      await sleep(killAfterMs);
      await vcA.kill9();
      await pass;
      const again = await start('a', vcA.port);
      agentA = agentFor('a', again);
      for (let i = 0; i < 4; i++) {
        await agentA.pass().catch(() => undefined);
        await agentB.pass().catch(() => undefined);
        await again.attest(epoch() + 1 + i).catch(() => undefined);
        await vcB.attest(epoch() + 1 + i).catch(() => undefined);
      }
      assertNoKeyInTwoPlaces(new Witness(witnessFile));
      const aHas = (await again.holdings()).local;
      const bHas = (await vcB.holdings()).local;
      for (const k of moved) expect([k, aHas.includes(k) && bHas.includes(k)]).toEqual([k, false]);
      const records = await s.store.getKeys(moved);
      console.log(killAfterMs, records.map((r) => `${r.state}:${r.pod ?? ''}`).join(' '));
      expect((await checkStore(s.store)).problems).toEqual([]);
    }, 60_000);
  }
});
