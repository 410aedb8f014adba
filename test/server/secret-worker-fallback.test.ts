// The secret worker's fallback seen through a running server (src/store/secret-opener.ts,
// src/server/root.ts): when the worker thread that opens handed-out secrets stops, allocations
// go on being answered, with secrets opened on the main thread, and the server warns once.
// The opener's own tests (test/store/secret-opener.test.ts) cover its other failures; this one
// checks the wiring: the server's log line, and answers that still carry the right secrets.
import { Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { bls } from '../../src/keys/bls-backend.js';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/root.js';
import { secretOpener } from '../../src/store/secret-opener.js';
import { type AllocationBody, http, onCleanup, tempDir, until } from '../helpers.js';

const FALLBACK =
  /^handed-out secrets now open on the server's main thread: its worker thread stopped \(exit code \d+\)$/;

/** A server on a temp dir whose log lines (parsed) are kept. */
async function loggedServer(): Promise<{ url: string; warnings: () => string[] }> {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line !== '') lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const running = await startServer(
    parseServerConfig({ dataDir: `${await tempDir()}/data`, listen: '127.0.0.1:0' }),
    createLogger('info', sink),
  );
  onCleanup(() => running.close(5_000));
  return {
    url: running.url,
    warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg),
  };
}

/** Allocates `count` keys to `pod`; each answered secret key must be its pubkey's. */
async function allocateChecked(url: string, pod: string, count: number): Promise<void> {
  const res = await http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count });
  expect(res.status).toBe(200);
  const keys = res.body.keys ?? [];
  expect(keys).toHaveLength(count);
  for (const { pubkey, secretKey } of keys) {
    const derived = bls.publicKey(Buffer.from(secretKey.slice(2), 'hex'));
    expect(`0x${Buffer.from(derived).toString('hex')}`).toBe(pubkey);
  }
}

/** The opener's worker thread, to stop it as a crash would (it is private to the opener). */
function openerWorker(): Worker | undefined {
  return (secretOpener as unknown as { worker: Worker | undefined }).worker;
}

describe('the secret worker stops under a running server', () => {
  it('allocations are still answered with their secrets, opened on the main thread, and the server warns once', async () => {
    const { url, warnings } = await loggedServer();
    await allocateChecked(url, 'before', 3);
    const byWorker = secretOpener.stats.worker;
    expect(byWorker).toBeGreaterThanOrEqual(3);
    expect(secretOpener.stats.main).toBe(0);
    const worker = openerWorker();
    expect(worker).toBeDefined();
    await worker?.terminate();
    await until(() => warnings().some((w) => FALLBACK.test(w)));

    await allocateChecked(url, 'after-1', 2);
    await allocateChecked(url, 'after-2', 2);
    expect(secretOpener.stats).toMatchObject({ worker: byWorker, main: 4 });
    expect(openerWorker()).toBeUndefined(); // none started again
    expect(warnings().filter((w) => w.startsWith('handed-out secrets'))).toHaveLength(1);
  }, 30_000);
});
