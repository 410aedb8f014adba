// Found by an adversarial review of issue 13 (one composition root): start-up failures and shutdown through the teardown.

import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/root.js';
import { kekLoader } from '../../src/store/encryption.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers.js';
import { kubeconfigFor } from '../kube/fake-api.js';
import { makeCert } from '../support/certs.js';

const log = createLogger('silent');

async function busyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('setup');
  return { server, port: address.port };
}

async function freePort(): Promise<number> {
  const { server, port } = await busyPort();
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Whether the store at dir can be opened (its lock is free), closing it again. */
async function storeIsFree(dataDir: string): Promise<boolean> {
  try {
    const store = await Store.open(dataDir, { kek: kekLoader(dataDir, undefined, () => {}) });
    await store.close();
    return true;
  } catch {
    return false;
  }
}

/** Handles that keep the process alive, by kind (timers, servers, watchers, workers). */
function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** The kinds of handle that are more now than in `before`. */
function grown(before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(resources()))
    if (n > (before[kind] ?? 0)) out[kind] = n - (before[kind] ?? 0);
  return out;
}

describe('break: a failed start stops what it started', () => {
  it('S1 listen on a busy port: INVALID_CONFIG, store closed, nothing left running', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const { server, port } = await busyPort();
    const before = resources();
    const config = parseServerConfig({ dataDir, listen: `127.0.0.1:${port}` });
    await expect(startServer(config, log)).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await new Promise((r) => setTimeout(r, 50));
    expect(grown(before)).toEqual({});
    expect(await storeIsFree(dataDir)).toBe(true);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('S2 listen on a busy port with TLS: the certificate watchers stop too', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const { cert, key } = await makeCert(dir, 'server');
    const { server, port } = await busyPort();
    const before = resources();
    const config = parseServerConfig({
      dataDir,
      listen: `127.0.0.1:${port}`,
      tlsCert: cert,
      tlsKey: key,
    });
    await expect(startServer(config, log)).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await new Promise((r) => setTimeout(r, 50));
    expect(grown(before)).toEqual({});
    expect(await storeIsFree(dataDir)).toBe(true);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('S3 --kube whose API server does not answer: port and store freed, nothing left running', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, kubeconfigFor(`http://127.0.0.1:${await freePort()}`));
    const port = await freePort();
    const before = resources();
    const config = parseServerConfig({
      dataDir,
      listen: `127.0.0.1:${port}`,
      kube: true,
      kubeconfig,
    });
    await expect(startServer(config, log)).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await new Promise((r) => setTimeout(r, 50));
    expect(await storeIsFree(dataDir)).toBe(true);
    // The port is free again.
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => again.close(() => r()));
    expect(grown(before)).toEqual({});
  }, 30_000);
});
