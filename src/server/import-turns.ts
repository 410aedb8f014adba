// Keystore imports run one at a time, whichever route brings them (POST /v1/admin/keys/import,
// POST /eth/v1/keystores): each holds a KDF pool sized to the machine's memory, and two of them
// at once would hold two.
import type { ImportOptions, ImportResult, ImportSource } from '../allocation/import-keys.js';
import { largestKdf } from '../allocation/import-keys.js';
import { KdfPool, poolSize } from '../keys/kdf-pool.js';
import type { AppDeps } from './deps.js';

export type RunImport = (
  sources: readonly ImportSource[],
  opts: ImportOptions,
) => Promise<ImportResult>;

/** An import runner for one app: each import waits for the one before to end. */
export function importTurns(allocator: AppDeps['allocator']): RunImport {
  let previous: Promise<unknown> = Promise.resolve();
  return (sources, opts) => {
    const run = async () => {
      const pool = new KdfPool(poolSize(largestKdf(sources)));
      try {
        return await allocator.importKeys(pool, sources, opts);
      } finally {
        await pool.close();
      }
    };
    const turn = previous.then(run, run);
    previous = turn.catch(() => undefined);
    return turn;
  };
}
