// The group committer against real accepts: connections queued in the kernel while this event
// loop was busy are accepted one per turn (libuv PR #3696), and their requests still go in one
// group (group-commit.ts, settle). A child process connects, so that the connections and their
// bytes wait in the kernel while this process's loop is held.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import type { Transaction } from '../../src/allocation/transaction.js';
import { checkStore } from '../../src/store/check.js';
import { onCleanup, openTempStore, tempDir, until } from '../helpers.js';
import { seedKeys } from '../support/seed.js';
import { takeOne } from '../support/tx-ops.js';

const CONNECTIONS = 8;

/** Opens argv[2] connections to port argv[1], one byte on each, then makes the file argv[3]. */
const CLIENT = `
const net = require('node:net');
const fs = require('node:fs');
const [port, count, marker] = process.argv.slice(1);
let ready = 0;
for (let i = 0; i < Number(count); i++) {
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.on('error', () => process.exit(1));
  socket.on('connect', () => socket.write('x', () => {
    if (++ready === Number(count)) fs.writeFileSync(marker, '');
  }));
}
`;

/** Holds this event loop, as a busy server's long turn does, until `check` passes. */
function holdLoopUntil(check: () => boolean, ms: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the client did not connect in time');
    Atomics.wait(cell, 0, 0, 5);
  }
}

describe('GroupCommitter, following a real server', () => {
  it('puts the requests of connections accepted one per turn in one group', async () => {
    const store = await openTempStore();
    await seedKeys(store, CONNECTIONS);
    const group = GroupCommitter.of(store);
    const ranIn = new Map<string, Transaction>();
    const answers: Array<Promise<string>> = [];
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => {
        const pod = `p${answers.length}`;
        answers.push(
          group.run((tx) => {
            ranIn.set(pod, tx);
            return takeOne(tx, pod);
          }),
        );
      });
    });
    // A bound far past the wait: this machine's other work may slow each turn (the bound has a
    // test of its own, group-commit.test.ts), and it is the turn without an accept that ends it.
    group.followConnections(server, 20_000);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP port');
    const marker = join(await tempDir(), 'connected');
    const client = spawn(
      process.execPath,
      ['-e', CLIENT, String(address.port), String(CONNECTIONS), marker],
      { stdio: 'ignore' },
    );
    onCleanup(async () => {
      if (client.exitCode === null && client.signalCode === null) {
        const exited = new Promise((resolve) => client.once('exit', resolve));
        client.kill('SIGKILL');
        await exited;
      }
    });

    holdLoopUntil(() => existsSync(marker), 20_000);
    await until(() => answers.length === CONNECTIONS);
    expect(new Set(await Promise.all(answers)).size).toBe(CONNECTIONS);
    // Without the wait, the first request went alone: its group began the turn it was read.
    expect(new Set(ranIn.values()).size).toBe(1);
    expect((await checkStore(store)).problems).toEqual([]);
  });
});
