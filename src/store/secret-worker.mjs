// @ts-check
// The worker thread of secret-opener.ts: opens batches of sealed secrets (gcm.mjs) away from
// the server's main thread, and answers each batch with its plaintexts end to end in one
// transferred buffer (a length per item; -1: it did not open). Plain JavaScript: see gcm.mjs.
import { parentPort } from 'node:worker_threads';
import { openGcm } from './gcm.mjs';

/**
 * A batch: the data keys it uses, and its items, a line each: the index of its key, the sealed
 * secret in hex and the additional data (the key's pubkey), apart by spaces.
 * @typedef {{ id: number, keys: Uint8Array[], items: string }} OpenBatch
 */

if (!parentPort) throw new Error('secret-worker.mjs runs as a worker thread');
const port = parentPort;

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
