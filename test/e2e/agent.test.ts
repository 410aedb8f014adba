import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../chain/node.js';
import { type AllocationBody, http, tempDir, until } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

describe('pkm agent', () => {
  it('after the server is restored from an older copy, re-asserts its keys with proofs of possession: they are its own again, never handed to a new pod', async () => {
    const dir = await tempDir();
    const data = join(dir, 'data');
    const old = join(dir, 'old-copy');
    const listen = `127.0.0.1:${await freePort()}`;
    const url = `http://${listen}`;
    const serverArgs = ['--data-dir', data, '--listen', listen, '--reuse-delay', '0'];

    // Pod x used two keys and released them: the old copy knows them as free.
    const first = await startServerProcess([...serverArgs, '--resync-window', '0']);
    const xKeys = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/x/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    await http(url, 'DELETE', '/v1/pods/x/keys');
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await cp(data, old, { recursive: true });

    // Pod p gets those keys and runs them, with the agent beside it.
    const second = await startServerProcess([...serverArgs, '--resync-window', '0']);
    const out = join(dir, 'p-out');
    const client = runPkm([
      'client',
      '--server',
      url,
      '--pod',
      'p',
      '--count',
      '2',
      '--out',
      out,
      '--kdf',
      'pbkdf2',
    ]);
    expect(await client.exited).toBe(0);
    expect((JSON.parse(client.stdout.join('')) as { pubkeys: string[] }).pubkeys.sort()).toEqual(
      [...xKeys].sort(),
    );
    const agent = runPkm([
      'agent',
      '--server',
      url,
      '--pod',
      'p',
      '--out',
      out,
      '--interval',
      '300ms',
    ]);
    // The server has answered a heartbeat of p's (the page shows its time), so the agent knows
    // this start's boot token: the next start's is a change it must react to.
    await until(async () =>
      /<tr data-pod="p">.*<td class="beat"><time /.test(
        await (await fetch(`${url}/assignments`)).text(),
      ),
    );

    // The server comes back from the old copy: it thinks p's keys are free.
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    await rm(data, { recursive: true, force: true });
    await cp(old, data, { recursive: true });
    const restored = await startServerProcess([...serverArgs, '--resync-window', '5s']);

    // The store does not record p as their holder, so the server refuses the agent's claim until
    // it proves possession of each key (signed from the keystores in --out); then they are p's.
    const held = async () =>
      (await http<{ pubkeys: string[] }>(url, 'GET', '/v1/pods/p/keys')).body.pubkeys;
    await until(async () => (await held()).length === 2);
    expect((await held()).sort()).toEqual([...xKeys].sort());
    expect(agent.stderr.some((l) => l.includes('re-asserting'))).toBe(true);
    expect(agent.stderr.some((l) => l.includes('proving possession'))).toBe(true);
    const q = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/q/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    expect(q.some((pk) => xKeys.includes(pk))).toBe(false);

    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    restored.proc.kill('SIGTERM');
    await restored.exited;
    // Logs go out in 4 KiB writes: all of them are out once the server stopped.
    expect(restored.stdout.some((l) => l.includes('heartbeat claims refused'))).toBe(true);
  }, 60_000);
});
