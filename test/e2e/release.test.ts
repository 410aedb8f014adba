// `pkm release --interchange` end to end, as a validator pod's preStop hook runs it: a spawned
// `pkm server --token-review` asks a fake Kubernetes API (on 127.0.0.1) about the pod's token.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NETWORKS } from '../../src/deposit/networks.js';
import { ExitCode } from '../../src/errors.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { fakeKubeApiEachTest } from '../kube/fake-api.js';
import { prove } from '../support/heartbeats.js';
import { interchangeFor } from '../support/interchange.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { runPkm, startServerProcess } from './spawn.js';

const HOODI = NETWORKS.hoodi.genesisValidatorsRoot ?? '';
const ADMIN = 'e7'.repeat(32);
/** Above any fence at the current slot: what the next holder gets is the uploaded history. */
const SLOT = 1_000_000_000;

interface Handed {
  keys: Array<{
    pubkey: string;
    slashingProtection?: { data: Array<{ signed_blocks: Array<{ slot: string }> }> };
  }>;
}

const interchange = (root: string, pubkeys: string[]) =>
  JSON.stringify(interchangeFor(root, pubkeys, SLOT));

const kube = fakeKubeApiEachTest();

/** A server with pod tokens (TokenReview) and an admin token, and a way to make pod tokens. */
async function serveWithTokens(extra: string[]) {
  const dir = await tempDir();
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kube.api.kubeconfigYaml());
  const admin = join(dir, 'admin-tokens');
  await writeFile(admin, `${ADMIN}\n`, { mode: 0o600 });
  rememberSecret(ADMIN);
  const server = await startServerProcess([
    '--data-dir',
    join(dir, 'data'),
    '--token-review',
    '--kubeconfig',
    kubeconfig,
    '--auth-token-file',
    admin,
    '--resync-window',
    '0',
    ...extra,
  ]);
  const tokenFile = async (pod: string) => {
    const file = join(dir, `${pod}.token`);
    const value = kube.api.issueToken('default', pod);
    rememberSecret(value);
    await writeFile(file, value, { mode: 0o600 });
    return { file, header: { authorization: `Bearer ${value}` } };
  };
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  return { server, tokenFile, file };
}

const release = (url: string, pod: string, tokenFile: string, interchangeFile: string) =>
  runPkm([
    'release',
    '--server',
    url,
    '--pod',
    pod,
    '--token-file',
    tokenFile,
    '--interchange',
    interchangeFile,
  ]);

describe('pkm release --interchange, with pod tokens', () => {
  it("stores the pod's own keys' history, prints the keys the server ignored, and releases", async () => {
    const { server, tokenFile, file } = await serveWithTokens([
      '--network',
      'hoodi',
      '--reuse-delay',
      '1s',
    ]);
    const v0 = await tokenFile('validator-0');
    const v1 = await tokenFile('validator-1');
    const take = async (pod: string, header: Record<string, string>, count: number) =>
      (
        await http<AllocationBody>(server.url, 'POST', `/v1/pods/${pod}/keys`, { count }, header)
      ).body.keys.map((k) => ({
        pubkey: k.pubkey,
        secretKey: Buffer.from(k.secretKey.slice(2), 'hex'),
      }));
    const v0Keys = await take('validator-0', v0.header, 2);
    const v1Keys = await take('validator-1', v1.header, 1);
    const [own, moved] = v0Keys.map((k) => k.pubkey);
    const [othersKey] = v1Keys.map((k) => k.pubkey);
    if (!own || !moved || !othersKey || !v0Keys[1]) throw new Error('setup');
    // validator-1 proves it also runs one of validator-0's keys (as pkm agent does): a
    // conflict, no longer validator-0's.
    const beat = (pubkeys: string[], proofs?: Record<string, string>) =>
      http<{ bootToken: string; conflicts: string[] }>(
        server.url,
        'POST',
        '/v1/pods/validator-1/heartbeat',
        { pubkeys, ...(proofs ? { proofs } : {}) },
        v1.header,
      );
    const { bootToken } = (await beat([])).body;
    const runs = [...v1Keys, v0Keys[1]];
    const claimed = await beat(
      runs.map((k) => k.pubkey),
      prove(bootToken, 'validator-1', runs),
    );
    expect(claimed.body.conflicts).toEqual([moved]);
    const unknown = `0x${'ab'.repeat(48)}`;
    // The VC's export lists every key it ever ran.
    const exported = await file(
      'export.json',
      interchange(HOODI, [own, moved, othersKey, unknown]),
    );

    const done = release(server.url, 'validator-0', v0.file, exported);
    expect(await done.exited).toBe(ExitCode.ok);
    const ignored = [
      { pubkey: moved, reason: 'conflict' },
      { pubkey: othersKey, reason: 'not-held' },
      { pubkey: unknown, reason: 'unknown' },
    ];
    expect(JSON.parse(done.stdout.join(''))).toEqual({
      pod: 'validator-0',
      released: [own],
      protection: { pubkeys: [own], ignored },
    });
    expect(done.stderr).toEqual(
      ignored.map(
        (k) => `pkm: warning: the server did not store the history of ${k.pubkey} (${k.reason})`,
      ),
    );

    // The next holder gets the history with the key.
    await new Promise((r) => setTimeout(r, 1_100));
    const v2 = await tokenFile('validator-2');
    const next = await http<Handed>(
      server.url,
      'POST',
      '/v1/pods/validator-2/keys',
      { count: 1 },
      v2.header,
    );
    const [handed] = next.body.keys;
    expect(handed?.pubkey).toBe(own);
    expect(handed?.slashingProtection?.data[0]?.signed_blocks).toEqual([{ slot: String(SLOT) }]);
  }, 60_000);

  it('while the genesis root is unknown: refuses, keeps the keys with the pod, and releases once an admin set the root', async () => {
    const { server, tokenFile, file } = await serveWithTokens([]);
    expect(server.stdout.join('\n')).toMatch(/the genesis_validators_root is unknown/);
    const v0 = await tokenFile('validator-0');
    const held = await http<AllocationBody>(
      server.url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 1 },
      v0.header,
    );
    const pubkey = held.body.keys[0]?.pubkey ?? '';
    const exported = await file('export.json', interchange(HOODI, [pubkey]));

    const refused = release(server.url, 'validator-0', v0.file, exported);
    expect(await refused.exited).toBe(ExitCode.refused);
    expect(refused.stderr.join('\n')).toMatch(
      /^pkm: GENESIS_ROOT_UNKNOWN: server: .*--network .*--genesis-validators-root/,
    );
    const still = await http<{ pubkeys: string[] }>(
      server.url,
      'GET',
      '/v1/pods/validator-0/keys',
      undefined,
      v0.header,
    );
    expect(still.body.pubkeys).toEqual([pubkey]);

    // The operator sets the root (an admin upload of no data), and the pod's release goes through.
    const admin = { authorization: `Bearer ${ADMIN}` };
    const set = await http(
      server.url,
      'POST',
      '/v1/pods/validator-0/slashing-protection',
      JSON.parse(interchange(HOODI, [])),
      admin,
    );
    expect(set.status).toBe(200);
    const again = release(server.url, 'validator-0', v0.file, exported);
    expect(await again.exited).toBe(ExitCode.ok);
    expect(JSON.parse(again.stdout.join(''))).toMatchObject({
      released: [pubkey],
      protection: { pubkeys: [pubkey], ignored: [] },
    });
  }, 60_000);
});
