import { describe, expect, it } from 'vitest';
import { http, MINUTE, startTestServer } from '../helpers.js';
import { allocateKeys, provenBeat } from '../support/heartbeats.js';

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
    expect(first.body).toEqual({ pod: 'old', pubkeys: [a], ignored: [] });
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
      'a slot past 2^53',
      (pk: string) => ({
        metadata: { interchange_format_version: '5', genesis_validators_root: GVR },
        data: [
          { pubkey: pk, signed_blocks: [{ slot: '9007199254740993' }], signed_attestations: [] },
        ],
      }),
      400,
      'INVALID_INTERCHANGE',
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

  it("stores the pod's own keys' history and names every other key listed, with why", async () => {
    const { url, store } = await startTestServer({
      reuseDelayMs: MINUTE,
      beacon: { genesisTime: GENESIS, genesisValidatorsRoot: GVR },
    });
    const aKeys = await allocateKeys(url, 'a', 3);
    const bKeys = await allocateKeys(url, 'b', 1);
    const [own, moved, retired] = aKeys.map((k) => k.pubkey);
    const [othersKey] = bKeys.map((k) => k.pubkey);
    if (!own || !moved || !retired || !othersKey || !aKeys[1]) throw new Error('setup');
    // Pod b proves it runs one of a's keys: now in conflict, it leaves both pods' lists.
    const beat = await provenBeat(url, 'b', [...bKeys, aKeys[1]]);
    expect(beat.body.conflicts).toEqual([moved]);
    await http(url, 'POST', `/v1/keys/${retired}/retire`, { reason: 'test' });
    const unknown = `0x${'cd'.repeat(48)}`;
    const beforeOthers = await store.getKeys([moved, retired, othersKey]);

    const res = await http<{ pod: string; pubkeys: string[]; ignored: unknown[] }>(
      url,
      'POST',
      '/v1/pods/a/slashing-protection',
      interchange(
        GVR,
        [own, moved, retired, othersKey, unknown].map((pubkey) => ({
          pubkey,
          slot: 500,
          source: 9,
          target: 10,
        })),
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      pod: 'a',
      pubkeys: [own],
      ignored: [
        { pubkey: moved, reason: 'conflict' },
        { pubkey: retired, reason: 'retired' },
        { pubkey: othersKey, reason: 'not-held' },
        { pubkey: unknown, reason: 'unknown' },
      ],
    });
    expect((await store.getKey(own))?.protection).toEqual({
      lastBlockSlot: 500,
      lastSourceEpoch: 9,
      lastTargetEpoch: 10,
    });
    // The others are exactly as they were, and the unknown key was not made up.
    expect(await store.getKeys([moved, retired, othersKey])).toEqual(beforeOthers);
    expect(await store.getKey(unknown)).toBeUndefined();
  });

  it('takes the history of keys the pod released that still cool, not of those since moved on', async () => {
    const { url, clock } = await startTestServer({
      reuseDelayMs: MINUTE,
      beacon: { genesisTime: GENESIS, genesisValidatorsRoot: GVR },
    });
    const [k] = (await keysOf(url, 'a', 1)).map((x) => x.pubkey);
    if (!k) throw new Error('setup');
    await http(url, 'DELETE', '/v1/pods/a/keys');
    const upload = () =>
      http<{ pubkeys: string[]; ignored: unknown[] }>(
        url,
        'POST',
        '/v1/pods/a/slashing-protection',
        interchange(GVR, [{ pubkey: k, slot: 7, source: 1, target: 2 }]),
      );
    expect((await upload()).body).toMatchObject({ pubkeys: [k], ignored: [] });
    clock.advance(MINUTE);
    expect((await keysOf(url, 'b', 1)).map((x) => x.pubkey)).toEqual([k]);
    expect((await upload()).body).toMatchObject({
      pubkeys: [],
      ignored: [{ pubkey: k, reason: 'not-held' }],
    });
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
