// Found by an adversarial review of issue 13 (one composition root): the teardown stack is shared by concurrent close()
// calls. cli.ts calls close() on SIGTERM and again on SIGINT; before the change each close()
// waited for server.close() (its callback fires once the last connection ends), now the second
// Teardown.run() pops the steps the first has not reached (proofs, depositor, store) and runs
// them while the first still drains: the store closes under a request in flight.
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startServer } from '../../src/server/root.js';
import { tempDir } from '../helpers.js';

const log = createLogger('silent');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('setup');
  await new Promise<void>((r) => server.close(() => r()));
  return address.port;
}

/**
 * Starts a server, sends a request whose body is not finished, stops the server `stops` times at
 * once (cli.ts: SIGTERM and SIGINT each call close()), then finishes the body: the status line
 * the request got.
 */
async function answerWhileStopping(stops: number): Promise<string> {
  const dir = await tempDir();
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const running = await startServer(
    parseServerConfig({ dataDir, listen: `127.0.0.1:${port}` }),
    log,
  );
  const socket: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', () => r()));
  let answer = '';
  socket.on('data', (d) => {
    answer += d.toString();
  });
  const ended = new Promise<void>((r) => socket.once('close', () => r()));
  socket.write(
    'POST /v1/pods/a/keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"count"',
  );
  await new Promise((r) => setTimeout(r, 100));
  const closing = Array.from({ length: stops }, () => running.close(5_000));
  await new Promise((r) => setTimeout(r, 100));
  socket.write(': 1}');
  await ended;
  await Promise.allSettled(closing);
  return `${answer.split('\r\n')[0]} ${answer.slice(answer.indexOf('{'))}`;
}

describe('break: close() drains requests in flight before the store closes', () => {
  it('S4 two close() at once (SIGTERM then SIGINT): the request in flight still gets its answer', async () => {
    expect(await answerWhileStopping(2)).toMatch(/^HTTP\/1\.1 200 OK /);
  }, 30_000);

  it('S4-control one close(): the request in flight gets its answer', async () => {
    expect(await answerWhileStopping(1)).toMatch(/^HTTP\/1\.1 200 OK /);
  }, 30_000);
});
