// pkm exits export end to end: the built CLI as a child process against `pkm server --network
// hoodi` on port 0 with an admin token. Each file written is checked without pkm's signing path
// (@lodestar/types for the roots, @noble/curves for the signature), and for its mode.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ssz } from '@lodestar/types';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { describe, expect, it } from 'vitest';
import { SignedVoluntaryExit } from '../../src/api/exits.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { ExitCode } from '../../src/errors.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

const ADMIN = 'e7'.repeat(32);
const admin = { authorization: `Bearer ${ADMIN}` };
const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';
const hex = (s: string) => Uint8Array.from(Buffer.from(s.slice(2), 'hex'));

/** The exit in `file`, verified against `pubkey` on hoodi's Capella domain (EIP-7044). */
async function verifiedExit(file: string, pubkey: string) {
  const exit = SignedVoluntaryExit.parse(JSON.parse(await readFile(file, 'utf8')));
  const forkDataRoot = ssz.phase0.ForkData.hashTreeRoot({
    currentVersion: hex('0x40000910'),
    genesisValidatorsRoot: hex(NETWORKS.hoodi.genesisValidatorsRoot ?? ''),
  });
  const domain = Uint8Array.from([0x04, 0, 0, 0, ...forkDataRoot.subarray(0, 28)]);
  const objectRoot = ssz.phase0.VoluntaryExit.hashTreeRoot({
    epoch: Number(exit.message.epoch),
    validatorIndex: Number(exit.message.validator_index),
  });
  const root = ssz.phase0.SigningData.hashTreeRoot({ objectRoot, domain });
  const sigs = bls12_381.longSignatures;
  expect(sigs.verify(hex(exit.signature), sigs.hash(root, DST), hex(pubkey))).toBe(true);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  return exit.message;
}

describe('pkm exits export', () => {
  it('writes one verified 0600 exit per key with an index, reports the rest, exits non-zero', async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, 'admin-token');
    await writeFile(tokenFile, `${ADMIN}\n`, { mode: 0o600 });
    const server = await startServerProcess([
      '--data-dir',
      join(dir, 'data'),
      '--network',
      'hoodi',
      '--auth-token-file',
      tokenFile,
    ]);
    const a = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 3 },
      admin,
    );
    const b = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/validator-1/keys',
      { count: 1 },
      admin,
    );
    const [k0, k1, k2] = a.body.keys.map((k) => k.pubkey);
    const [k3] = b.body.keys.map((k) => k.pubkey);
    if (!k0 || !k1 || !k2 || !k3) throw new Error('setup');
    const secrets = [...a.body.keys, ...b.body.keys].map((k) => k.secretKey.slice(2));
    const connection = ['--server', server.url, '--token-file', tokenFile];

    // Without the token: refused before anything is written.
    const refused = runPkm(['exits', 'export', '--server', server.url, '--out', join(dir, 'x')]);
    expect(await refused.exited).toBe(ExitCode.refused);
    expect(refused.stderr.join('\n')).toMatch(/AUTH_REQUIRED/);

    // All keys; k2 has no index: reported, exit non-zero, the other three written.
    const out = join(dir, 'exits', 'all');
    const all = runPkm([
      'exits',
      'export',
      ...connection,
      '--out',
      out,
      '--index',
      `${k0}=10`,
      '--index',
      `${k1.toUpperCase().replace('0X', '0x')}=11`,
      '--index',
      `${k3}=13`,
    ]);
    expect(await all.exited).toBe(ExitCode.refused);
    const stderr = all.stderr.join('\n');
    expect(stderr).toContain(`${k2}: no validator index known`);
    expect(stderr).toMatch(/VALIDATOR_INDEX_UNKNOWN: 1 key\(s\)/);
    const summary = JSON.parse(all.stdout.join('\n')) as { written: number; noIndex: string[] };
    expect(summary).toMatchObject({ written: 3, noIndex: [k2] });
    expect((await readdir(out)).sort()).toEqual([k0, k1, k3].map((k) => `${k}.json`).sort());
    expect((await stat(out)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'exits'))).mode & 0o777).toBe(0o700);
    expect(await verifiedExit(join(out, `${k0}.json`), k0)).toEqual({
      epoch: '0',
      validator_index: '10',
    });
    expect((await verifiedExit(join(out, `${k1}.json`), k1)).validator_index).toBe('11');
    expect((await verifiedExit(join(out, `${k3}.json`), k3)).validator_index).toBe('13');

    // One pod, another epoch: only its key, exit 0.
    const podOut = join(dir, 'pod');
    const pod = runPkm([
      'exits',
      'export',
      ...connection,
      '--out',
      podOut,
      '--pod',
      'validator-1',
      '--epoch',
      '7',
      '--index',
      `${k3}=13`,
    ]);
    expect(await pod.exited).toBe(ExitCode.ok);
    expect(await readdir(podOut)).toEqual([`${k3}.json`]);
    expect(await verifiedExit(join(podOut, `${k3}.json`), k3)).toEqual({
      epoch: '7',
      validator_index: '13',
    });

    // Bad flags are usage errors, before any request.
    for (const bad of [
      ['--epoch', '-1'],
      ['--index', `${k0}=x`],
      ['--index', 'nope=1'],
    ]) {
      const run = runPkm(['exits', 'export', ...connection, '--out', join(dir, 'bad'), ...bad]);
      expect(await run.exited).toBe(ExitCode.usage);
    }

    // No secret key on any output of the CLI or in any file it wrote.
    const printed = [all, pod].flatMap((r) => [...r.stdout, ...r.stderr]).join('\n');
    const written = await Promise.all(
      (await readdir(out)).map((f) => readFile(join(out, f), 'utf8')),
    );
    for (const s of secrets) {
      expect(printed).not.toContain(s);
      for (const text of written) expect(text).not.toContain(s);
    }
  });
});
