// Faults an adversarial review of `pkm agent`'s proofs of possession found (commit 0d9f8ab),
// kept as reproductions: each asserts the safe behaviour, and fails while the fault is there.
// The agent proves the keys the server refused from the keystores in --out; one key it cannot
// open must not keep it from proving the others (each unproven key stays free for other pods).

import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Agent } from '../../src/client/agent.js';
import { type ClientOptions, runClient } from '../../src/client/client.js';
import { LAYOUT_SPECS, type Layout } from '../../src/client/layouts.js';
import { createLogger } from '../../src/log.js';
import { onCleanup, startTestServer, tempDir } from '../helpers.js';

const CHEAP = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1000 } } as const;
const quiet = createLogger('silent');

/**
 * Pod p's --out with two keystores written by `pkm client`, and a server whose store has no
 * record of them (restored from a copy older than them): every heartbeat claim needs a proof.
 */
async function podRunningLostKeys(layout: Layout = 'lighthouse') {
  const first = await startTestServer();
  const out = join(await tempDir(), 'out');
  const opts: ClientOptions = {
    server: new URL(first.url),
    pod: 'p',
    namespace: 'default',
    count: 2,
    out,
    layout,
    kdf: 'scrypt',
    passwordFile: join(out, 'password.txt'),
    timeoutMs: 5_000,
    concurrency: 2,
    sharedKdf: false,
    costs: CHEAP,
  };
  const { pubkeys } = await runClient(opts, quiet);
  const server = await startTestServer();
  return { out, pubkeys, server, spec: LAYOUT_SPECS[layout] };
}

const agentFor = (url: string, out: string, layout: Layout = 'lighthouse') =>
  new Agent(
    { server: new URL(url), pod: 'p', namespace: 'default', out, layout, intervalMs: 1_000 },
    quiet,
  );

/** The state of each key in the server's store. */
const statesOf = async (
  store: Awaited<ReturnType<typeof startTestServer>>['store'],
  pubkeys: readonly string[],
) => Promise.all(pubkeys.map(async (pk) => (await store.getKey(pk))?.state ?? 'unknown'));

describe('break: pkm agent proofs of possession', () => {
  it('A1 a key whose password file is missing does not keep the agent from proving its other keys', async () => {
    const { out, pubkeys, server, spec } = await podRunningLostKeys();
    const [broken, fine] = pubkeys;
    await rm(join(out, spec.passwordPath(broken ?? '') ?? ''));
    await agentFor(server.url, out)
      .beat()
      .catch(() => undefined);
    // `fine` has its keystore and password: it must be proven and recorded as p's.
    expect(await statesOf(server.store, [fine ?? ''])).toEqual(['reported']);
  });

  it('A2 a key whose password file holds a wrong password does not keep the agent from proving its other keys', async () => {
    const { out, pubkeys, server, spec } = await podRunningLostKeys();
    const [broken, fine] = pubkeys;
    await writeFile(join(out, spec.passwordPath(broken ?? '') ?? ''), 'not-the-password');
    await agentFor(server.url, out)
      .beat()
      .catch(() => undefined);
    expect(await statesOf(server.store, [fine ?? ''])).toEqual(['reported']);
  });

  it('A3 a keystore removed from --out while the agent proves possession does not keep it from proving the others', async () => {
    const { out, pubkeys, server, spec } = await podRunningLostKeys();
    const [removed, fine] = pubkeys;
    // Between the server's refusal and the agent's signing, the key leaves --out (an operator
    // or a `pkm client` run moving it): a proxy removes it as the first answer passes.
    let answers = 0;
    const proxy: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const answer = await fetch(`${server.url}${req.url ?? ''}`, {
          method: req.method ?? 'GET',
          headers: { 'content-type': 'application/json' },
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
        });
        const text = await answer.text();
        if (answers++ === 0) await rm(join(out, spec.keystorePath(removed ?? '')));
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(text);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const { port } = proxy.address() as AddressInfo;
    await agentFor(`http://127.0.0.1:${port}`, out)
      .beat()
      .catch(() => undefined);
    expect(await statesOf(server.store, [fine ?? ''])).toEqual(['reported']);
  });
});
