// @ts-check
// The worker thread of secret-opener.ts: opens batches of sealed secrets (gcm.mjs) away from
// the server's main thread, and answers each batch with its plaintexts end to end in one
// transferred buffer (a length per item; -1: it did not open). Plain JavaScript: see gcm.mjs.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { openGcm } from './gcm.mjs';

/** How much lower than the process this thread runs (a nice value, 19 the lowest). */
const WORKER_NICENESS = 10;

/**
 * A batch: the data keys it uses, and its items, a line each: the index of its key, the sealed
 * secret in hex and the additional data (the key's pubkey), apart by spaces.
 * @typedef {{ id: number, keys: Uint8Array[], items: string }} OpenBatch
 */

if (!parentPort) throw new Error('secret-worker.mjs runs as a worker thread');
const port = parentPort;
yieldToMainThread();

port.on('message', (/** @type {OpenBatch} */ batch) => {
  const opened = batch.items.split('\n').map((line) => {
    const [index, sealed = '', aad = ''] = line.split(' ');
    const key = batch.keys[Number(index)];
    try {
      return key && openGcm(key, Buffer.from(sealed, 'hex'), Buffer.from(aad, 'utf8'));
    } catch {
      return undefined; // a key of the wrong size: it does not open, as a wrong key does not
    }
  });
  const plain = new Uint8Array(opened.reduce((n, p) => n + (p?.length ?? 0), 0));
  /** @type {number[]} */
  const lengths = [];
  let at = 0;
  for (const p of opened) {
    if (!p) {
      lengths.push(-1);
      continue;
    }
    plain.set(p, at);
    at += p.length;
    lengths.push(p.length);
    p.fill(0);
  }
  // This thread's copies of the data keys go as soon as they are used.
  for (const key of batch.keys) key.fill(0);
  port.postMessage({ id: batch.id, plain, lengths }, [plain.buffer]);
});

/**
 * Lowers this thread's priority below the server's main thread (issue 17, point 4). A batch
 * woke this thread while the main thread ran on, and Linux let it take the main thread's core
 * for the whole batch: one post in ten held the main thread up about a millisecond (bench/
 * allocate, the post's time: 90th percentile 953 us; 91 us with this thread lowered). The
 * main thread's work is what every request waits for; this one's is only its own group's,
 * which opens while the group's batch is being synced. Linux gives each thread a nice value
 * of its own (setpriority(2) on the thread's id, which /proc/thread-self names). Elsewhere,
 * or where it is not allowed, the thread runs at the process's priority, as before.
 */
function yieldToMainThread() {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(tid, Math.min(19, getPriority(tid) + WORKER_NICENESS));
  } catch {
    // not Linux, or not allowed: the same priority as the process
  }
}
