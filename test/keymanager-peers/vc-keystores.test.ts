// The fake VC's /eth/v1/keystores against the spec: local_keystores.yaml's schemas and the
// statuses of flows/README.md (Import: imported/duplicate/error, 400 before any change; Delete:
// deleted/not_active/not_found, slashing protection returned and kept).
import { describe, expect, it } from 'vitest';
import { bls } from '../../src/keys/bls-backend.js';
import { ic, keystores, ROOT, type Statuses } from '../support/keymanager-fixture.js';
import { km, lab } from './setup.js';

const PATH = '/eth/v1/keystores';
type Listed = { data: Array<{ validating_pubkey: string }> };

describe('fake VC: local keystores', () => {
  it('imports, lists, and answers duplicate and error per keystore', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(3);
    const first = await km<Statuses>(vc.url, vc.token, 'POST', PATH, {
      keystores: [k.keystores[0], k.keystores[1]],
      passwords: [k.passwords[0], 'wrong password'],
    });
    expect(first.status).toBe(200);
    expect(first.body.data.map((d) => d.status)).toEqual(['imported', 'error']);
    const again = await km<Statuses>(vc.url, vc.token, 'POST', PATH, {
      keystores: [k.keystores[0], k.keystores[2], k.keystores[2]],
      passwords: [k.passwords[0], k.passwords[2], k.passwords[2]],
    });
    expect(again.body.data.map((d) => d.status)).toEqual(['duplicate', 'imported', 'duplicate']);
    const list = await km<Listed>(vc.url, vc.token, 'GET', PATH);
    expect(list.body.data.map((d) => d.validating_pubkey).sort()).toEqual(
      [k.pubkeys[0], k.pubkeys[2]].sort(),
    );
  });

  it('refuses a malformed batch with 400 and changes nothing', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(1);
    const one = { keystores: k.keystores, passwords: k.passwords };
    const bad = [
      { keystores: k.keystores, passwords: [] },
      { ...one, slashing_protection: 'not json' },
      { ...one, slashing_protection: JSON.stringify({ metadata: {}, data: [] }) },
      // Another chain's history: it cannot apply here.
      {
        ...one,
        slashing_protection: JSON.stringify({
          ...ic([]),
          metadata: {
            interchange_format_version: '5',
            genesis_validators_root: `0x${'cd'.repeat(32)}`,
          },
        }),
      },
      { keystores: 'x' },
    ];
    for (const body of bad) {
      const res = await km(vc.url, vc.token, 'POST', PATH, body, true);
      expect(res.status).toBe(400);
    }
    expect((await km<Listed>(vc.url, vc.token, 'GET', PATH)).body.data).toEqual([]);
  });

  it('DELETE returns the slashing protection and keeps it: deleted, then not_active, then not_found for an unknown key', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(2);
    const k0 = k.pubkeys[0] ?? '';
    await km(vc.url, vc.token, 'POST', PATH, {
      keystores: [k.keystores[0]],
      passwords: [k.passwords[0]],
      slashing_protection: JSON.stringify(ic([[k0, 100, 5]])),
    });
    const report = await vc.attest(9);
    expect(report.signed.map((s) => s.pubkey)).toEqual([k0]);
    const del = await km<Statuses>(vc.url, vc.token, 'DELETE', PATH, {
      pubkeys: [k0, k.pubkeys[1]],
    });
    expect(del.body.data.map((d) => d.status)).toEqual(['deleted', 'not_found']);
    const out = JSON.parse(del.body.slashing_protection);
    expect(out.metadata.genesis_validators_root).toBe(ROOT);
    expect(out.data.map((e: { pubkey: string }) => e.pubkey)).toEqual([k0]);
    expect(out.data[0].signed_blocks).toEqual([{ slot: '100' }]);
    expect(
      out.data[0].signed_attestations.map((a: { target_epoch: string }) => a.target_epoch),
    ).toEqual(['5', '9']);
    const twice = await km<Statuses>(vc.url, vc.token, 'DELETE', PATH, { pubkeys: [k0] });
    expect(twice.body.data.map((d) => d.status)).toEqual(['not_active']);
    expect(JSON.parse(twice.body.slashing_protection)).toEqual(out);
    expect((await km<Listed>(vc.url, vc.token, 'GET', PATH)).body.data).toEqual([]);
  });

  it('a key deleted and imported again keeps its history; an import with protection merges into it', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(1);
    const k0 = k.pubkeys[0] ?? '';
    const imp = { keystores: k.keystores, passwords: k.passwords };
    await km(vc.url, vc.token, 'POST', PATH, imp);
    expect((await vc.attest(7)).signed).toHaveLength(1);
    await km(vc.url, vc.token, 'DELETE', PATH, { pubkeys: [k0] });
    const back = await km<Statuses>(vc.url, vc.token, 'POST', PATH, {
      ...imp,
      slashing_protection: JSON.stringify(ic([[k0, 300, 20]])),
    });
    expect(back.body.data[0]?.status).toBe('imported');
    // Epoch 7 was signed before the delete, 20 came with the import: neither is signed again.
    const refused = await vc.attest(15);
    expect(refused.signed).toEqual([]);
    expect(refused.refused[0]?.reason).toMatch(/not above 20/);
    const del = await km<Statuses>(vc.url, vc.token, 'DELETE', PATH, { pubkeys: [k0] });
    const targets = JSON.parse(del.body.slashing_protection).data[0].signed_attestations.map(
      (a: { target_epoch: string }) => a.target_epoch,
    );
    expect(targets).toEqual(['7', '20']);
  });

  it('the Prysm #17408 mimic answers empty protection for a key that signed, statuses unchanged', async () => {
    for (const mode of ['no-entries', 'empty-history'] as const) {
      const l = await lab();
      const vc = await l.vc('vc-prysm', { emptyDeleteProtection: mode });
      const k = await keystores(1);
      await km(vc.url, vc.token, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
      expect((await vc.attest(3)).signed).toHaveLength(1);
      const del = await km<Statuses>(vc.url, vc.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
      expect(del.body.data[0]?.status).toBe('deleted');
      const out = JSON.parse(del.body.slashing_protection);
      const signed = out.data.flatMap(
        (e: { signed_attestations: unknown[] }) => e.signed_attestations,
      );
      expect(signed).toEqual([]);
      expect(out.data).toHaveLength(mode === 'no-entries' ? 0 : 1);
    }
  });

  it('signs only with the keys it holds, and each signature verifies under its key', async () => {
    const l = await lab();
    const vc = await l.vc('vc-a');
    const k = await keystores(3);
    await km(vc.url, vc.token, 'POST', PATH, { keystores: k.keystores, passwords: k.passwords });
    await km(vc.url, vc.token, 'DELETE', PATH, { pubkeys: [k.pubkeys[1]] });
    const report = await vc.attest(12);
    expect(report.signed.map((s) => s.pubkey).sort()).toEqual([k.pubkeys[0], k.pubkeys[2]].sort());
    const roots = l.witness.read().flatMap((e) => (e.kind === 'signed' ? [e.root] : []));
    const bytes = (h: string) => Buffer.from(h.slice(2), 'hex');
    for (const s of report.signed)
      expect(bls.verify(bytes(s.pubkey), bytes(roots[0] ?? ''), bytes(s.signature))).toBe(true);
    await km(vc.url, vc.token, 'DELETE', PATH, { pubkeys: k.pubkeys });
    expect(await vc.attest(13)).toEqual({ epoch: 13, signed: [], refused: [] });
  });
});
