// The EIP-3076 merge on its own: uploads and fences combine to the stricter of both, so the
// protection handed to a key's next holder never goes below anything uploaded for it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fenceAt, merge, sameProtection, summarise } from '../../src/allocation/interchange.js';
import { parseInterchange, toInterchange } from '../../src/api/interchange.js';
import type { Protection } from '../../src/store/records.js';

const PK = `0x${'ab'.repeat(48)}`;
const ROOT = `0x${'01'.repeat(32)}`;
const protection: fc.Arbitrary<Protection> = fc.record(
  {
    lastBlockSlot: fc.nat({ max: 1e9 }),
    lastSourceEpoch: fc.nat({ max: 1e7 }),
    lastTargetEpoch: fc.nat({ max: 1e7 }),
  },
  { requiredKeys: [] },
);
const atLeast = (a: Protection, b: Protection) =>
  (['lastBlockSlot', 'lastSourceEpoch', 'lastTargetEpoch'] as const).every(
    (f) => b[f] === undefined || (a[f] !== undefined && (a[f] ?? 0) >= (b[f] ?? 0)),
  );

describe('slashing-protection merge (EIP-3076)', () => {
  it('is the stricter of both: never below either side, and order does not matter', () => {
    fc.assert(
      fc.property(protection, protection, protection, (a, b, c) => {
        const m = merge(a, b);
        expect(atLeast(m, a) && atLeast(m, b)).toBe(true);
        expect(merge(b, a)).toEqual(m);
        expect(merge(merge(a, b), c)).toEqual(merge(a, merge(b, c)));
        expect(merge(m, m)).toEqual(m);
      }),
      { numRuns: 300 },
    );
  });

  it('compares histories by their bounds, whatever the order of their fields', () => {
    fc.assert(
      fc.property(protection, protection, (a, b) => {
        const reversed = Object.fromEntries(Object.entries(a).reverse()) as Protection;
        expect(sameProtection(a, reversed)).toBe(true);
        expect(sameProtection(merge(a, reversed), a)).toBe(true);
        // The same as deep equality, which ignores field order too.
        const equal = JSON.stringify(merge(a, {})) === JSON.stringify(merge(b, {}));
        expect(sameProtection(a, b)).toBe(equal);
      }),
      { numRuns: 300 },
    );
  });

  it('summarises an interchange to each key’s highest slot and epochs, across entries', () => {
    const summary = summarise(
      parseInterchange({
        metadata: { interchange_format_version: '5', genesis_validators_root: ROOT },
        data: [
          {
            pubkey: PK,
            signed_blocks: [{ slot: '10' }, { slot: '7' }],
            signed_attestations: [{ source_epoch: '2', target_epoch: '3' }],
          },
          {
            pubkey: PK,
            signed_blocks: [],
            signed_attestations: [{ source_epoch: '1', target_epoch: '9' }],
          },
        ],
      }),
    );
    expect(summary.get(PK)).toEqual({ lastBlockSlot: 10, lastSourceEpoch: 2, lastTargetEpoch: 9 });
  });

  it('round-trips: what toInterchange writes parses and summarises back to the same protection', () => {
    fc.assert(
      fc.property(protection, (p) => {
        const partial = p.lastSourceEpoch === undefined || p.lastTargetEpoch === undefined;
        const written = toInterchange(ROOT, [[PK, p]]);
        const back = summarise(parseInterchange(JSON.parse(JSON.stringify(written)))).get(PK);
        // An attestation needs both epochs: with one missing, none is written.
        const expected = partial
          ? merge({}, p.lastBlockSlot === undefined ? {} : { lastBlockSlot: p.lastBlockSlot })
          : p;
        expect(back).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('fences at the current slot and epoch, from genesis', () => {
    const genesis = 1_700_000_000;
    expect(fenceAt((genesis + 12 * 64 + 5) * 1000, genesis)).toEqual({
      lastBlockSlot: 64,
      lastSourceEpoch: 2,
      lastTargetEpoch: 2,
    });
    expect(fenceAt((genesis - 100) * 1000, genesis)).toEqual({
      lastBlockSlot: 0,
      lastSourceEpoch: 0,
      lastTargetEpoch: 0,
    });
  });

  it('refuses what is not a v5 interchange, with a coded error', () => {
    for (const bad of [
      {},
      { metadata: { interchange_format_version: '4', genesis_validators_root: ROOT }, data: [] },
      { metadata: { interchange_format_version: '5', genesis_validators_root: '0x12' }, data: [] },
    ])
      expect(() => parseInterchange(bad)).toThrow(
        expect.objectContaining({ code: 'INVALID_INTERCHANGE' }),
      );
  });
});
