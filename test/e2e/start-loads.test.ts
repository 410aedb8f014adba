// What a command loads at its start (issue 17, point 5): a start spends most of its time loading
// modules, so `pkm server` on LevelDB without deposits leaves out the code of what it does not
// use (SSZ and signing, the chain client, PostgreSQL), and the other commands, `pkm client`
// first, leave out the server. The packages each process imported are logged by a resolve hook.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

const HOOK = new URL('../support/package-log.mjs', import.meta.url).pathname;

async function loggedRun(): Promise<{
  env: Record<string, string>;
  packages: () => Promise<Set<string>>;
}> {
  const log = join(await tempDir(), 'packages.txt');
  return {
    env: { NODE_OPTIONS: `--import ${HOOK}`, PKM_TEST_PACKAGE_LOG: log },
    packages: async () => new Set((await readFile(log, 'utf8')).split('\n').filter(Boolean)),
  };
}

const SERVER_ONLY = ['express', 'prom-client'];
/** `ethers` is the whole library, the chain client; the address checks load `ethers/address`. */
const UNUSED_BY_A_PLAIN_SERVER = ['@chainsafe/ssz', 'ethers', 'pg', '@kubernetes/client-node'];

describe('what a start loads', () => {
  it('pkm server on LevelDB without deposits serves without SSZ, ethers, pg or the Kubernetes client', async () => {
    const run = await loggedRun();
    const server = await startServerProcess(['--data-dir', await tempDir()], run.env);
    expect((await http(server.url, 'POST', '/v1/pods/validator-0/keys', { count: 2 })).status).toBe(
      200,
    );
    expect((await http(server.url, 'GET', '/v1/assignments')).status).toBe(200);
    const loaded = await run.packages();
    for (const name of [...SERVER_ONLY, 'level']) expect(loaded).toContain(name);
    for (const name of UNUSED_BY_A_PLAIN_SERVER) expect(loaded).not.toContain(name);
  });

  it('pkm server with deposits loads their SSZ at the start', async () => {
    const run = await loggedRun();
    await startServerProcess(
      [
        '--data-dir',
        await tempDir(),
        '--network',
        'hoodi',
        '--withdrawal-address',
        '0x00000000219ab540356cBB839Cbe05303d7705Fa',
      ],
      run.env,
    );
    expect(await run.packages()).toContain('@chainsafe/ssz');
  });

  it('pkm client, as every pod starts, loads none of the server', async () => {
    const run = await loggedRun();
    const client = runPkm(['client', '--help'], run.env);
    expect(await client.exited).toBe(0);
    const loaded = await run.packages();
    expect(loaded).toContain('commander');
    for (const name of [...SERVER_ONLY, ...UNUSED_BY_A_PLAIN_SERVER])
      expect(loaded).not.toContain(name);
  });
});
