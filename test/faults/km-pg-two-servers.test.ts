// Adversarial review of issue 16 on PostgreSQL with two servers: moves and releases on one,
// the agent's removal reports on the other, at the same instant. Each key must end with one
// owner, the store's check clean, and every answer true to what was committed.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { createLogger } from '../../src/log.js';
import { composeApp } from '../../src/server/root.js';
import { checkStore } from '../../src/store/check.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { type AllocationBody, FakeClock, http, onCleanup, testKek } from '../helpers.js';
import { interchangeFor } from '../support/interchange.js';
import { newDatabase } from '../support/pg-databases.js';
import { findPostgres, usePostgres } from '../support/postgres.js';

const ROOT = `0x${'ab'.repeat(32)}`;
const GENESIS = Date.UTC(2020, 11, 1) / 1000;
const bins = await findPostgres();

describe.skipIf(bins === undefined)(
  'live moves with two servers on one PostgreSQL database',
  () => {
    const cluster = bins ? usePostgres(bins) : () => undefined;
    let made = 0;

    async function serverOn(url: string, clock: FakeClock) {
      const store = await PgStore.open(url, {
        kek: testKek,
        poolSize: 4,
        lanes: true,
        presence: 'server',
      });
      onCleanup(() => store.close());
      const { app, proofs } = composeApp({
        store,
        group: GroupCommitter.of(store),
        clock: clock.now,
        monotonic: clock.monotonic,
        log: createLogger('silent'),
        beacon: { genesisTime: GENESIS, genesisValidatorsRoot: ROOT },
        config: {
          reuseDelayMs: 20 * 60_000,
          maxKeysPerPod: 64,
          maxTotalKeys: undefined,
          namespaces: [],
          resyncWindowMs: 0,
        },
      });
      const server = createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      onCleanup(async () => {
        await new Promise<void>((r) => server.close(() => r()));
        proofs.close();
      });
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, store };
    }

    it('a report on one server races a release and a second move on the other: one owner per key, answers true', async () => {
      const c = cluster();
      if (!c) throw new Error('no PostgreSQL');
      const db = await newDatabase(c, `pkm_km_break_${++made}`);
      const clock = new FakeClock();
      const s1 = await serverOn(db, clock);
      const s2 = await serverOn(db, clock);
      for (let round = 0; round < 6; round++) {
        const a = `a${round}`;
        const alloc = await http<AllocationBody>(s1.url, 'POST', `/v1/pods/${a}/keys`, {
          count: 3,
        });
        expect(alloc.status).toBe(200);
        const move = await http<{ keys: string[] }>(s1.url, 'POST', '/v1/moves', {
          from: a,
          to: `b${round}`,
          count: 2,
        });
        expect(move.status).toBe(200);
        const [x, y] = move.body.keys;
        const report = {
          keys: [
            { pubkey: x, status: 'deleted' },
            { pubkey: y, status: 'deleted' },
          ],
          slashing_protection: JSON.stringify(interchangeFor(ROOT, move.body.keys)),
        };
        // At once: the report on s2; on s1 the pod's release (odd rounds) or a move of its last key (even).
        const [rep, other] = await Promise.all([
          http<{ keys: Array<{ pubkey: string; outcome: string; to?: string }> }>(
            s2.url,
            'POST',
            `/v1/pods/${a}/removals`,
            report,
          ),
          round % 2 === 1
            ? http<{ released?: string[] }>(s1.url, 'DELETE', `/v1/pods/${a}/keys`)
            : http<{ keys?: string[] }>(s1.url, 'POST', '/v1/moves', {
                from: a,
                to: `c${round}`,
                count: 1,
              }),
        ]);
        expect(rep.status).toBe(200);
        expect(other.status).toBe(200);
        for (const r of rep.body.keys) {
          const rec = await s1.store.getKey(r.pubkey);
          // The report's answer is what the store now says.
          if (r.outcome === 'moved')
            expect([r.pubkey, rec?.state, rec?.pod]).toEqual([r.pubkey, 'allocated', `b${round}`]);
          if (r.outcome === 'not-held')
            expect(rec?.state === 'allocated' && rec.pod === `b${round}`).toBe(false);
        }
        const problems = (await checkStore(s1.store)).problems;
        expect([round, problems]).toEqual([round, []]);
      }
    }, 120_000);
  },
);
