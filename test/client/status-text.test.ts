// `pkm status`'s pool line: why the pool cannot serve the next pod, --new-keys never included.
import { describe, expect, it } from 'vitest';
import { statusText } from '../../src/client/status-text.js';

const answer = (pool: Record<string, unknown>) => ({
  ready: true,
  counts: { free: 0, total: 0, pods: 0 },
  pool,
  conflicts: [],
  lastDeposits: [],
});
const poolLine = (pool: Record<string, unknown>) =>
  statusText(answer(pool))
    .split('\n')
    .find((l) => l.startsWith('pool'));

describe('pkm status, pool line', () => {
  it('names --new-keys never, exhausted or not, and how to add keys', () => {
    expect(
      poolLine({ free: 0, cooling: 2, canCreate: false, newKeys: 'never', healthy: false }),
    ).toBe(
      'pool       EXHAUSTED: no free key and --new-keys never (2 cooling): import keystores with pkm keys import or POST /eth/v1/keystores',
    );
    expect(
      poolLine({ free: 3, cooling: 0, canCreate: false, newKeys: 'never', healthy: true }),
    ).toBe('pool       ok: 3 free, --new-keys never');
  });

  it('reads a server from before --new-keys as always', () => {
    expect(poolLine({ free: 1, cooling: 0, canCreate: true, healthy: true })).toBe(
      'pool       ok: 1 free, new keys allowed',
    );
    expect(poolLine({ free: 0, cooling: 1, canCreate: false, healthy: false })).toBe(
      'pool       EXHAUSTED: no free key and --max-total-keys reached (1 cooling)',
    );
  });
});
