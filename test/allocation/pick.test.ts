// "Oldest freed first" across the free and the cooled index, on its own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickOldest } from '../../src/allocation/pick.js';
import type { IndexEntry } from '../../src/store/contract.js';

const entries = fc
  .uniqueArray(
    fc.record({
      since: fc.nat({ max: 50 }),
      pubkey: fc.stringMatching(/^[0-9a-f]{4}$/),
    }),
    {
      selector: (e) => e.pubkey,
      maxLength: 12,
    },
  )
  .map((es) => [...es].sort((x, y) => x.since - y.since || (x.pubkey < y.pubkey ? -1 : 1)));
const older = (x: IndexEntry, y: IndexEntry) =>
  x.since - y.since || (x.pubkey < y.pubkey ? -1 : x.pubkey > y.pubkey ? 1 : 0);

describe('pickOldest', () => {
  it('takes the n oldest of both lists, oldest first, each once', () => {
    fc.assert(
      fc.property(entries, entries, fc.nat({ max: 30 }), (a, b, n) => {
        const both = [...a, ...b.filter((e) => !a.some((x) => x.pubkey === e.pubkey))];
        const bOnly = b.filter((e) => !a.some((x) => x.pubkey === e.pubkey));
        const picked = pickOldest(a, bOnly, n);
        expect(picked).toEqual([...both].sort(older).slice(0, n));
      }),
      { numRuns: 300 },
    );
  });

  it('breaks a tie in time by pubkey, and stops when both lists run out', () => {
    const a = [{ since: 5, pubkey: 'bb' }];
    const b = [{ since: 5, pubkey: 'aa' }];
    expect(pickOldest(a, b, 5).map((e) => e.pubkey)).toEqual(['aa', 'bb']);
    expect(pickOldest([], [], 3)).toEqual([]);
  });
});
