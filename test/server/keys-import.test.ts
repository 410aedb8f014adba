// POST /v1/admin/keys/import over real HTTP: admin only, refusals named by index, history
// handed out with the keys, and a fenced key kept from every pod until the reuse delay.
import { describe, expect, it } from 'vitest';
import { toInterchange } from '../../src/api/interchange.js';
import { randomKey } from '../../src/keys/bls.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import { Auth } from '../../src/server/auth.js';
import { checkStore } from '../../src/store/check.js';
import { type AllocationBody, http, MINUTE, startTestServer } from '../helpers.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
const ADMIN = 'a'.repeat(64);
const ROOT = `0x${'ab'.repeat(32)}`;
const PATH = '/v1/admin/keys/import';
const admin = { authorization: `Bearer ${ADMIN}` };

interface ImportAnswer {
  imported: string[];
  skipped: string[];
  failed: Array<{ index: number; code: string; message: string }>;
  protected: string[];
  protectionIgnored: string[];
}

async function body(n: number) {
  const keys = Array.from({ length: n }, () => randomKey());
  const keystores = await Promise.all(
    keys.map((k, i) =>
      encryptKeystore(k.secretKey, `pw${i}`, { pubkey: k.pubkey, path: '' }, 'scrypt', CHEAP),
    ),
  );
  return { keys, keystores, passwords: keys.map((_, i) => `pw${i}`) };
}

describe('POST /v1/admin/keys/import', () => {
  it('needs an admin token, and reads no body without one', async () => {
    const server = await startTestServer({ auth: new Auth({ adminTokens: [ADMIN] }) });
    const before = await server.store.rawEntries();
    const { keystores, passwords } = await body(1);
    const none = await http(server.url, 'POST', PATH, { keystores, passwords });
    expect([none.status, none.body.error.code]).toEqual([401, 'AUTH_REQUIRED']);
    const wrong = await http(
      server.url,
      'POST',
      PATH,
      { keystores, passwords },
      {
        authorization: `Bearer ${'b'.repeat(64)}`,
      },
    );
    expect(wrong.status).toBe(401);
    // Far over the route's limit: refused for the token before the body is read.
    const huge = await http(server.url, 'POST', PATH, { pad: 'x'.repeat(20_000_000) });
    expect(huge.status).toBe(401);
    expect(await server.store.rawEntries()).toEqual(before);
  });

  it('imports fenced keys, names refusals by index, and keeps them from every pod until the reuse delay', async () => {
    const server = await startTestServer({
      auth: new Auth({ adminTokens: [ADMIN] }),
      beacon: { genesisTime: 1_600_000_000, genesisValidatorsRoot: ROOT },
    });
    const { keys, keystores, passwords } = await body(3);
    const history = toInterchange(ROOT, [
      [keys[1]?.pubkey ?? '', { lastBlockSlot: 7, lastSourceEpoch: 2, lastTargetEpoch: 3 }],
    ]);
    const res = await http<ImportAnswer>(
      server.url,
      'POST',
      PATH,
      {
        keystores: [...keystores, { version: 4 }],
        passwords: [passwords[0], 'wrong', passwords[2], 'x'],
        slashing_protection: history,
      },
      admin,
    );
    expect(res.status).toBe(200);
    expect(res.body.failed.map((f) => [f.index, f.code])).toEqual(
      expect.arrayContaining([
        [1, 'KEYSTORE_PASSWORD'],
        [3, 'KEYSTORE_INVALID'],
      ]),
    );
    expect([...res.body.imported].sort()).toEqual([keys[0]?.pubkey, keys[2]?.pubkey].sort());
    expect(res.body.protectionIgnored).toEqual([keys[1]?.pubkey]);
    expect(JSON.stringify(res.body)).not.toContain('secret');

    const imported = new Set(res.body.imported);
    const a = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
      admin,
    );
    expect(a.body.keys.filter((k) => imported.has(k.pubkey))).toEqual([]);
    server.clock.jumpWall(60 * MINUTE); // a wall-clock step is no time passing
    const b = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/b/keys',
      { count: 2 },
      admin,
    );
    expect(b.body.keys.filter((k) => imported.has(k.pubkey))).toEqual([]);
    server.clock.advance(20 * MINUTE);
    const c = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/c/keys',
      { count: 2 },
      admin,
    );
    expect(new Set(c.body.keys.map((k) => k.pubkey))).toEqual(imported);
    expect((await checkStore(server.store)).problems).toEqual([]);
  });

  it('hands never-validated keys out at once, with their history', async () => {
    const server = await startTestServer({
      beacon: { genesisTime: 1_600_000_000, genesisValidatorsRoot: ROOT },
    });
    const { keys, keystores, passwords } = await body(1);
    const pubkey = keys[0]?.pubkey ?? '';
    const history = toInterchange(ROOT, [
      [pubkey, { lastBlockSlot: 70, lastSourceEpoch: 2, lastTargetEpoch: 3 }],
    ]);
    const res = await http<ImportAnswer>(server.url, 'POST', PATH, {
      keystores,
      passwords,
      slashing_protection: history,
      neverValidated: true,
    });
    expect(res.body.protected).toEqual([pubkey]);
    const a = await http<{ keys: Array<{ pubkey: string; slashingProtection?: unknown }> }>(
      server.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 1 },
    );
    expect(a.body.keys[0]?.pubkey).toBe(pubkey);
    expect(JSON.stringify(a.body.keys[0]?.slashingProtection)).toContain('"slot":"70"');
  });

  it('refuses bad bodies and another chain’s history, and changes nothing', async () => {
    const server = await startTestServer({
      beacon: { genesisTime: 1_600_000_000, genesisValidatorsRoot: ROOT },
    });
    const before = await server.store.rawEntries();
    const { keys, keystores, passwords } = await body(1);
    const cases: Array<[unknown, number, string]> = [
      [{ keystores, passwords: [] }, 400, 'INVALID_BODY'],
      [{ keystores, passwords: ['a', 'b'] }, 400, 'INVALID_BODY'],
      [{ keystores: 'no', passwords }, 400, 'INVALID_BODY'],
      [{ keystores, passwords, slashing_protection: { metadata: {} } }, 400, 'INVALID_INTERCHANGE'],
      [
        {
          keystores,
          passwords,
          slashing_protection: toInterchange(`0x${'cd'.repeat(32)}`, [[keys[0]?.pubkey ?? '', {}]]),
        },
        409,
        'INTERCHANGE_MISMATCH',
      ],
    ];
    for (const [sent, status, code] of cases) {
      const res = await http(server.url, 'POST', PATH, sent);
      expect([res.status, res.body.error.code]).toEqual([status, code]);
    }
    expect(await server.store.rawEntries()).toEqual(before);
  });
});
