// An adversarial review (issue 14 point 4): what held (these pass): auth, history, imports, races, GET
// streaming.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fenceAt } from '../../src/allocation/interchange.js';
import { type AllocationBody, http, MINUTE } from '../helpers.js';
import {
  ADMIN,
  admin,
  GENESIS,
  ic,
  keystores,
  PATH,
  POD_TOKEN,
  ROOT,
  type Statuses,
  server,
} from '../support/keymanager-fixture.js';
import { loadKeymanagerSpec, problems } from '../support/keymanager-spec.js';

describe('break: the Keymanager API, what held', () => {
  it('pod tokens are refused on every method, and nothing changes', async () => {
    const s = await server();
    const a = await keystores(1);
    await http(s.url, 'POST', PATH, { keystores: a.keystores, passwords: a.passwords }, admin);
    const before = await s.store.rawEntries();
    const pod = { authorization: `Bearer ${POD_TOKEN}` };
    for (const [m, body] of [
      ['GET', undefined],
      ['POST', { keystores: a.keystores, passwords: a.passwords }],
      ['DELETE', { pubkeys: a.pubkeys }],
    ] as const) {
      const res = await http(s.url, m, PATH, body, pod);
      expect(res.status).toBe(403);
    }
    expect(await s.store.rawEntries()).toEqual(before);
  });

  it('released key: exported >= uploaded, fenced; second DELETE not_active; store keeps the history', async () => {
    const s = await server();
    const spec = await loadKeymanagerSpec();
    const got = await http<AllocationBody>(s.url, 'POST', '/v1/pods/p1/keys', { count: 1 }, admin);
    const k = got.body.keys[0]?.pubkey ?? '';
    const far = fenceAt(s.clock.ms, GENESIS).lastBlockSlot ?? 0;
    await http(
      s.url,
      'POST',
      '/v1/pods/p1/slashing-protection',
      ic([[k, far + 10_000, Math.floor(far / 32) + 1000]]),
      admin,
    );
    await http(s.url, 'DELETE', '/v1/pods/p1/keys', undefined, admin);
    s.clock.advance(21 * MINUTE);
    const del = await http<Statuses>(
      s.url,
      'DELETE',
      PATH,
      { pubkeys: [k, k.toUpperCase().replace('0X', '0x'), k] },
      admin,
    );
    expect(problems(spec.answer(PATH, 'delete', del.status), del.body)).toEqual([]);
    expect(del.body.data.map((d) => d.status)).toEqual(['deleted', 'not_active', 'not_active']);
    const out = JSON.parse(del.body.slashing_protection);
    expect(out.metadata.genesis_validators_root).toBe(ROOT);
    expect(out.data).toHaveLength(1);
    expect(out.data[0].signed_blocks).toEqual([{ slot: String(far + 10_000) }]);
    const ep = Math.floor(far / 32) + 1000;
    expect(out.data[0].signed_attestations).toEqual([
      { source_epoch: String(ep - 1), target_epoch: String(ep) },
    ]);
    const again = await http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: [k] }, admin);
    expect(JSON.parse(again.body.slashing_protection).data).toEqual(out.data);
    expect(await s.store.getKey(k)).toMatchObject({
      state: 'retired',
      protection: { lastBlockSlot: far + 10_000 },
    });
    // A POST with lower history leaves it; the key stays retired.
    const ks = await http<Statuses>(s.url, 'GET', PATH, undefined, admin);
    expect(JSON.stringify(ks.body)).not.toContain(k);
  });

  it('POST with lower history for a held key keeps the higher one; objects and hostile KDFs refused', async () => {
    const s = await server();
    const a = await keystores(2);
    const first = await http<Statuses>(
      s.url,
      'POST',
      PATH,
      {
        keystores: a.keystores,
        passwords: a.passwords,
        slashing_protection: JSON.stringify(ic([[a.pubkeys[0] ?? '', 500, 50]])),
      },
      admin,
    );
    expect(first.body.data.map((d) => d.status)).toEqual(['imported', 'imported']);
    const lower = await http<Statuses>(
      s.url,
      'POST',
      PATH,
      {
        keystores: [a.keystores[0]],
        passwords: [a.passwords[0]],
        slashing_protection: JSON.stringify(ic([[a.pubkeys[0] ?? '', 1, 1]])),
      },
      admin,
    );
    expect(lower.body.data.map((d) => d.status)).toEqual(['duplicate']);
    expect((await s.store.getKey(a.pubkeys[0] ?? ''))?.protection).toEqual({
      lastBlockSlot: 500,
      lastSourceEpoch: 49,
      lastTargetEpoch: 50,
    });
    const objects = await http(
      s.url,
      'POST',
      PATH,
      { keystores: [JSON.parse(a.keystores[0] ?? '')], passwords: ['pw0'] },
      admin,
    );
    expect(objects.status).toBe(400);
    const hostile = JSON.parse(a.keystores[1] ?? '');
    hostile.crypto.kdf.params.n = 2 ** 30;
    hostile.crypto.kdf.params.r = 8;
    const t0 = Date.now();
    const h = await http<Statuses>(
      s.url,
      'POST',
      PATH,
      { keystores: [JSON.stringify(hostile)], passwords: ['pw1'] },
      admin,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(h.body.data[0]?.status).toBe('error');
    const pb = JSON.parse(a.keystores[1] ?? '');
    pb.crypto.kdf = {
      function: 'pbkdf2',
      params: { dklen: 32, c: 2 ** 31, prf: 'hmac-sha256', salt: pb.crypto.kdf.params.salt },
      message: '',
    };
    const p = await http<Statuses>(
      s.url,
      'POST',
      PATH,
      { keystores: [JSON.stringify(pb)], passwords: ['pw1'] },
      admin,
    );
    expect(p.body.data[0]?.status).toBe('error');
    // An answer never carries a secret or a password.
    for (const body of [first.body, lower.body, h.body, p.body]) {
      for (const sec of a.secrets) expect(JSON.stringify(body)).not.toContain(sec);
      expect(JSON.stringify(body)).not.toContain('pw1');
    }
  });

  it('concurrent POSTs of the same keys: each key imported once, one record', async () => {
    const s = await server();
    const a = await keystores(4);
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        http<Statuses>(
          s.url,
          'POST',
          PATH,
          { keystores: a.keystores, passwords: a.passwords },
          admin,
        ),
      ),
    );
    for (let i = 0; i < 4; i++) {
      const imported = answers.filter((r) => r.body.data[i]?.status === 'imported').length;
      expect(imported).toBe(1);
    }
  });

  it('many concurrent DELETEs, allocations and heartbeats: no key both deleted and handed out', async () => {
    const s = await server();
    const a = await keystores(40);
    await http(s.url, 'POST', PATH, { keystores: a.keystores, passwords: a.passwords }, admin);
    s.clock.advance(21 * MINUTE);
    const reqs: Array<Promise<unknown>> = [];
    const deleted = new Set<string>();
    const handed = new Map<string, string>();
    for (let i = 0; i < 10; i++) {
      const slice = a.pubkeys.slice((i * 4) % 40, ((i * 4) % 40) + 8);
      reqs.push(
        http<Statuses>(s.url, 'DELETE', PATH, { pubkeys: slice }, admin).then((r) => {
          r.body.data.forEach((d, j) => {
            if (d.status === 'deleted') deleted.add(slice[j] ?? '');
          });
        }),
      );
      reqs.push(
        http<AllocationBody>(s.url, 'POST', `/v1/pods/q${i}/keys`, { count: 3 }, admin).then(
          (r) => {
            for (const k of r.body.keys ?? []) handed.set(k.pubkey, `q${i}`);
          },
        ),
      );
      reqs.push(
        http(
          s.url,
          'POST',
          `/v1/pods/q${i}/heartbeat`,
          { pubkeys: a.pubkeys.slice(i, i + 3) },
          admin,
        ),
      );
    }
    await Promise.all(reqs);
    expect(deleted.size).toBeGreaterThan(0);
    expect(handed.size).toBeGreaterThan(0);
    for (const pk of deleted) {
      expect(handed.has(pk)).toBe(false);
      expect((await s.store.getKey(pk))?.state).toBe('retired');
    }
    for (const [pk] of handed) expect((await s.store.getKey(pk))?.state).toBe('allocated');
  });

  it('GET over thousands of keys: a client that leaves mid-stream breaks nothing; no retired key, no secret', async () => {
    const s = await server();
    const handed: AllocationBody['keys'] = [];
    for (let i = 0; i < 48; i++) {
      const r = await http<AllocationBody>(
        s.url,
        'POST',
        `/v1/pods/g${i}/keys`,
        { count: 64 },
        admin,
      );
      handed.push(...r.body.keys);
    }
    const gone = handed[0]?.pubkey ?? '';
    await http(s.url, 'POST', `/v1/keys/${gone}/retire`, {}, admin);
    const { port } = new URL(s.url);
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const sock = connect(Number(port), '127.0.0.1', () => {
          sock.write(`GET ${PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`);
        });
        sock.once('data', () => {
          sock.destroy();
          resolve();
        });
      });
    }
    const full = await http<{ data: Array<{ validating_pubkey: string }> }>(
      s.url,
      'GET',
      PATH,
      undefined,
      admin,
    );
    expect(full.status).toBe(200);
    expect(full.body.data.length).toBe(48 * 64 - 1);
    expect(full.body.data.map((d) => d.validating_pubkey)).not.toContain(gone);
    const text = JSON.stringify(full.body);
    for (const k of handed.slice(0, 50)) expect(text).not.toContain(k.secretKey.replace(/^0x/, ''));
  });
});
