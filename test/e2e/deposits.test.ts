import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  computeDomain,
  computeSigningRoot,
  DepositMessage,
  DOMAIN_DEPOSIT,
} from '../../src/deposit/ssz.js';
import { nobleBackend } from '../../src/keys/bls-backend.js';
import { http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

interface Entry {
  pubkey: string;
  withdrawal_credentials: string;
  amount: number;
  signature: string;
  deposit_message_root: string;
  fork_version: string;
  network_name: string;
}
const bytes = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';

describe('deposit data in record mode (pure-JS BLS: blst switched off)', () => {
  it('stores verified deposit data with each new key, serves it, and exports it', async () => {
    const data = join(await tempDir(), 'data');
    const args = ['--data-dir', data, '--network', 'hoodi', '--withdrawal-address', ADDRESS];
    const server = await startServerProcess(args, { PKM_BLS_BACKEND: 'noble' });
    const a = await http<{ keys: Array<{ pubkey: string }> }>(
      server.url,
      'POST',
      '/v1/pods/a/keys',
      { count: 2 },
    );
    await http(server.url, 'POST', '/v1/pods/b/keys', { count: 1 });

    const all = (await http<Entry[]>(server.url, 'GET', '/v1/deposits')).body;
    expect(all).toHaveLength(3);
    const domain = computeDomain(DOMAIN_DEPOSIT, bytes('10000910'));
    for (const e of all) {
      expect(e).toMatchObject({
        amount: 32e9,
        fork_version: '10000910',
        network_name: 'hoodi',
        withdrawal_credentials: `010000000000000000000000${ADDRESS.slice(2)}`,
      });
      const root = DepositMessage.hashTreeRoot({
        pubkey: bytes(e.pubkey),
        withdrawalCredentials: bytes(e.withdrawal_credentials),
        amount: e.amount,
      });
      expect(Buffer.from(root).toString('hex')).toBe(e.deposit_message_root);
      expect(
        nobleBackend.verify(bytes(e.pubkey), computeSigningRoot(root, domain), bytes(e.signature)),
      ).toBe(true);
    }
    const forA = (await http<Entry[]>(server.url, 'GET', '/v1/deposits?pod=a')).body;
    expect(forA.map((e) => `0x${e.pubkey}`).sort()).toEqual(
      a.body.keys.map((k) => k.pubkey).sort(),
    );
    expect((await http<Entry[]>(server.url, 'GET', '/v1/deposits?state=free')).body).toEqual([]);

    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const out = join(await tempDir(), 'deposit_data.json');
    const exported = runPkm(['deposits', 'export', '--data-dir', data, '--out', out]);
    expect(await exported.exited).toBe(0);
    const file = JSON.parse(await readFile(out, 'utf8')) as Entry[];
    expect(file.map((e) => e.pubkey).sort()).toEqual(all.map((e) => e.pubkey).sort());
  }, 60_000);

  it('refuses to start deposits without withdrawal credentials', async () => {
    const child = runPkm([
      'server',
      '--data-dir',
      await tempDir(),
      '--listen',
      '127.0.0.1:0',
      '--network',
      'hoodi',
      '--deposit-mode',
      'record',
    ]);
    expect(await child.exited).toBe(2);
    expect(child.stderr.join('')).toMatch(/deposits need withdrawal credentials/);
  });

  it('with --network alone, names the chain, warns that keys carry no deposit data, and makes none', async () => {
    const server = await startServerProcess(['--data-dir', await tempDir(), '--network', 'hoodi']);
    expect(server.stdout.join('\n')).toMatch(/--network without withdrawal credentials/);
    const res = await http<{ keys: unknown[] }>(server.url, 'POST', '/v1/pods/p/keys', {
      count: 1,
    });
    expect(res.body.keys).toHaveLength(1);
    expect((await http<Entry[]>(server.url, 'GET', '/v1/deposits')).body).toEqual([]);
  });
});
