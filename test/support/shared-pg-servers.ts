// Several "servers" on one test database, as the multi-server fault tests open them: a
// PgStore per server with lanes and a presence lock, short leader timings, closed after the
// test. Call inside a describe block (it starts the suite's PostgreSQL cluster).
import { PgStore } from '../../src/store/pg/pg-store.js';
import { onCleanup, testKek } from '../helpers.js';
import { newDatabase } from './pg-databases.js';
import { type PgBinaries, usePostgres } from './postgres.js';

/** Leader timings short enough for a test. */
const FAST = { campaignMs: 100, pingMs: 100, pingTimeoutMs: 1_000 };

export function useSharedServers(
  bins: PgBinaries | undefined,
  prefix: string,
): { freshDatabase(): Promise<string>; openServer(url: string): Promise<PgStore> } {
  // Declared under describe.skipIf(!bins): without PostgreSQL nothing here runs.
  const server = bins
    ? usePostgres(bins)
    : () => {
        throw new Error('PostgreSQL is not installed');
      };
  let made = 0;
  return {
    freshDatabase() {
      return newDatabase(server(), `${prefix}_${++made}`);
    },
    async openServer(url) {
      const store = await PgStore.open(url, {
        kek: testKek,
        poolSize: 4,
        leaderTimes: FAST,
        lanes: true,
        presence: 'server',
      });
      onCleanup(() => store.close());
      return store;
    },
  };
}
