import { describe, expect, it } from 'vitest';
import { http, MINUTE, startTestServer } from '../helpers.js';

const GVR = `0x${'21'.repeat(32)}`;
const GENESIS = 1_700_000_000; // unix seconds

interface Handed {
  keys: Array<{ pubkey: string; slashingProtection?: Interchange }>;
}
interface Interchange {
  metadata: { interchange_format_version: string; genesis_validators_root: string };
  data: Array<{
    pubkey: string;
    signed_blocks: Array<{ slot: string }>;
    signed_attestations: Array<{ source_epoch: string; target_epoch: string }>;
  }>;
}

function interchange(
  gvr: string,
  entries: Array<{ pubkey: string; slot: number; source: number; target: number }>,
) {
  return {
    metadata: { interchange_format_version: '5', genesis_validators_root: gvr },
    data: entries.map((e) => ({
      pubkey: e.pubkey,
      signed_blocks: [
        { slot: String(e.slot - 1) },
        { slot: String(e.slot), signing_root: `0x${'ab'.repeat(32)}` },
      ],
      signed_attestations: [
        { source_epoch: String(e.source), target_epoch: String(e.target) },
        { source_epoch: String(e.source - 1), target_epoch: String(e.target - 1) },
      ],
    })),
  };
}

const keysOf = async (url: string, pod: string, count: number) =>
  (await http<Handed>(url, 'POST', `/v1/pods/${pod}/keys`, { count })).body.keys;

describe('slashing protection hand-off (EIP-3076)', () => {
  it('merges uploads to the highest slot and epochs, and hands them on with the keys', async () => {
    const { url, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const [a, b] = (await keysOf(url, 'old', 2)).map((k) => k.pubkey);
    if (!a || !b) throw new Error('setup');
    const first = await http(
      url,
      'POST',
      '/v1/pods/old/slashing-protection',
      interchange(GVR, [{ pubkey: a, slot: 100, source: 3, target: 4 }]),
    );
    expect(first.body).toEqual({ pod: 'old', pubkeys: [a] });
    // A later, partly older upload never lowers what is kept.
    await http(
      url,
      'POST',
      '/v1/pods/old/slashing-protection',
      interchange(GVR, [{ pubkey: a, slot: 90, source: 5, target: 4 }]),
    );
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);

    const next = await keysOf(url, 'new', 2);
    const withHistory = next.find((k) => k.pubkey === a);
    expect(withHistory?.slashingProtection).toEqual({
      metadata: { interchange_format_version: '5', genesis_validators_root: GVR },
      data: [
        {
          pubkey: a,
          signed_blocks: [{ slot: '100' }],
          signed_attestations: [{ source_epoch: '5', target_epoch: '4' }],
        },
      ],
    });
    // No upload and no known genesis: nothing to hand on for b.
    expect(next.find((k) => k.pubkey === b)?.slashingProtection).toBeUndefined();
  });

  it.each([
    [
      'another format version',
      (pk: string) => ({
        ...interchange(GVR, [{ pubkey: pk, slot: 1, source: 1, target: 1 }]),
        metadata: { interchange_format_version: '4', genesis_validators_root: GVR },
      }),
      400,
      'INVALID_INTERCHANGE',
    ],
    [
      'a slot that is not a decimal string',
      (pk: string) => ({
        metadata: { interchange_format_version: '5', genesis_validators_root: GVR },
        data: [{ pubkey: pk, signed_blocks: [{ slot: 12 }], signed_attestations: [] }],
      }),
      400,
      'INVALID_INTERCHANGE',
    ],
    [
      'a key the pod does not hold',
      () => interchange(GVR, [{ pubkey: `0x${'cd'.repeat(48)}`, slot: 1, source: 1, target: 1 }]),
      409,
      'INTERCHANGE_MISMATCH',
    ],
    [
      "another genesis root than the network's",
      (pk: string) =>
        interchange(`0x${'99'.repeat(32)}`, [{ pubkey: pk, slot: 1, source: 1, target: 1 }]),
      409,
      'INTERCHANGE_MISMATCH',
    ],
  ])('refuses %s and changes nothing', async (_what, body, status, code) => {
    const { url, store } = await startTestServer({
      beacon: { genesisTime: GENESIS, genesisValidatorsRoot: GVR },
    });
    const [k] = await keysOf(url, 'p', 1);
    const before = await store.rawEntries();
    const res = await http(url, 'POST', '/v1/pods/p/slashing-protection', body(k?.pubkey ?? ''));
    expect([res.status, res.body.error.code]).toEqual([status, code]);
    expect(await store.rawEntries()).toEqual(before);
  });

  it('keeps the genesis root of the first upload when no network names one', async () => {
    const { url } = await startTestServer();
    const [k] = await keysOf(url, 'p', 1);
    const pk = k?.pubkey ?? '';
    expect(
      (
        await http(
          url,
          'POST',
          '/v1/pods/p/slashing-protection',
          interchange(GVR, [{ pubkey: pk, slot: 1, source: 1, target: 1 }]),
        )
      ).status,
    ).toBe(200);
    const other = await http(
      url,
      'POST',
      '/v1/pods/p/slashing-protection',
      interchange(`0x${'77'.repeat(32)}`, [{ pubkey: pk, slot: 2, source: 1, target: 1 }]),
    );
    expect(other.body.error.code).toBe('INTERCHANGE_MISMATCH');
  });

  it.each([
    ['released by the pod', 'release'],
    ['released by a forced deletion (fenced)', 'force'],
  ])(
    'fences a recycled key with no upload to the current slot and epoch: %s',
    async (_what, how) => {
      const { url, clock, allocator } = await startTestServer({
        reuseDelayMs: MINUTE,
        beacon: { genesisTime: GENESIS, genesisValidatorsRoot: GVR },
      });
      const fresh = await keysOf(url, 'a', 1);
      expect(fresh[0]?.slashingProtection).toBeUndefined(); // a new key has no past
      if (how === 'release') await http(url, 'DELETE', '/v1/pods/a/keys');
      else await allocator.release('a', { stop: 'forced' });
      clock.advance(MINUTE);
      const [k] = await keysOf(url, 'b', 1);
      const slot = Math.floor((clock.ms / 1000 - GENESIS) / 12);
      expect(k?.slashingProtection?.data).toEqual([
        {
          pubkey: fresh[0]?.pubkey,
          signed_blocks: [{ slot: String(slot) }],
          signed_attestations: [
            {
              source_epoch: String(Math.floor(slot / 32)),
              target_epoch: String(Math.floor(slot / 32)),
            },
          ],
        },
      ]);
    },
  );
});
