import { describe, expect, it } from 'vitest';
import { fenceAt } from '../../src/allocation/interchange.js';
import { randomKey } from '../../src/keys/bls.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import { Auth } from '../../src/server/auth.js';
import { type AllocationBody, http, MINUTE, startTestServer, type TestServer } from '../helpers.js';
import { loadKeymanagerSpec, problems } from '../support/keymanager-spec.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const ADMIN = 'a'.repeat(64);
const POD_TOKEN = 'pod-token-of-p1';
const admin = { authorization: `Bearer ${ADMIN}` };
const ROOT = `0x${'ab'.repeat(32)}`;
const GENESIS = Date.UTC(2020, 11, 1) / 1000;
const PATH = '/eth/v1/keystores';
interface Statuses {
  data: Array<{ status: string; message?: string }>;
  slashing_protection: string;
}

async function server(opts: { beacon?: boolean } = {}): Promise<TestServer> {
  const reviewer = {
    review: async (token: string) => {
      if (token !== POD_TOKEN) throw new Error('bad token');
      return { pod: 'p1', uid: 'u1' };
    },
  };
  return startTestServer({
    auth: new Auth({ adminTokens: [ADMIN], reviewer: reviewer as never }),
    beacon: { genesisTime: opts.beacon === false ? 0 : GENESIS, genesisValidatorsRoot: ROOT },
  });
}

async function _keystores(n: number) {
  const keys = Array.from({ length: n }, () => randomKey());
  const files = await Promise.all(
    keys.map((k, i) =>
      encryptKeystore(k.secretKey, `pw${i}`, { pubkey: k.pubkey, path: '' }, 'scrypt', CHEAP),
    ),
  );
  return {
    secrets: keys.map((k) => Buffer.from(k.secretKey).toString('hex')),
    pubkeys: keys.map((k) => k.pubkey),
    keystores: files.map((f) => JSON.stringify(f)),
    passwords: keys.map((_, i) => `pw${i}`),
  };
}

const ic = (entries: Array<[string, number, number]>) => ({
  metadata: { interchange_format_version: '5', genesis_validators_root: ROOT },
  data: entries.map(([pubkey, slot, epoch]) => ({
    pubkey,
    signed_blocks: [{ slot: String(slot) }],
    signed_attestations: [{ source_epoch: String(epoch - 1), target_epoch: String(epoch) }],
  })),
});

describe('break: the protection a deleted or retired key leaves with', () => {
  it('a key retired from under its pod: not_active protection is no lower than what a hand-off would fence', async () => {
    const s = await server();
    const spec = await loadKeymanagerSpec();
    const got = await http<AllocationBody>(s.url, 'POST', '/v1/pods/p1/keys', { count: 1 }, admin);
    const k = got.body.keys[0]?.pubkey ?? '';
    const up = await http(
      s.url,
      'POST',
      '/v1/pods/p1/slashing-protection',
      ic([[k, 100, 5]]),
      admin,
    );
    expect(up.status).toBe(200);
    s.clock.advance(60 * MINUTE); // the pod keeps validating meanwhile
    const ret = await http(s.url, 'POST', `/v1/keys/${k}/retire`, {}, admin);
    expect(ret.status).toBe(200);
    const del = await http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: [k] }, admin);
    expect(problems(spec.answer(PATH, 'delete', del.status), del.body)).toEqual([]);
    expect(del.body.data[0]?.status).toBe('not_active');
    const out = JSON.parse(del.body.slashing_protection);
    const fence = fenceAt(s.clock.ms, GENESIS);
    expect(Number(out.data[0].signed_blocks[0].slot)).toBeGreaterThanOrEqual(
      fence.lastBlockSlot ?? 0,
    );
  });
});
