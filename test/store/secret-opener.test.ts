// The secrets an allocation hands out open on a worker thread (src/store/secret-opener.ts):
// the same plaintexts as on the main thread, the same refusals, and the main thread again
// whenever the worker is not there.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/store/encryption.js';
import type { SealedSecret } from '../../src/store/records.js';
import { SecretOpener } from '../../src/store/secret-opener.js';

const run = promisify(execFile);
const pubkeyOf = (i: number) => `0x${i.toString(16).padStart(96, '0')}`;

/** A worker that stops at its first message, before answering it. */
const DYING_WORKER = new URL(
  `data:text/javascript,${encodeURIComponent(
    "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(1));",
  )}`,
);

/** A worker that stays alive and never answers. */
const SILENT_WORKER = new URL(
  `data:text/javascript,${encodeURIComponent(
    "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => {});",
  )}`,
);

const openers: SecretOpener[] = [];
afterEach(async () => {
  await Promise.all(openers.splice(0).map((o) => o.close()));
});

function ringWith(opener: SecretOpener): KeyRing {
  openers.push(opener);
  return new KeyRing('kek-1', randomBytes(32), opener);
}

function sealMany(ring: KeyRing, n: number, first = 0) {
  return Array.from({ length: n }, (_, i) => {
    const secret = new Uint8Array(randomBytes(32));
    const pubkey = pubkeyOf(first + i);
    return { secret, pubkey, sealed: ring.seal(secret, pubkey) };
  });
}

/** The sealed secret with one hex digit of its ciphertext changed. */
function tampered(sealed: SealedSecret): SealedSecret {
  const at = 30;
  const digit = sealed.data[at] === '0' ? '1' : '0';
  return { ...sealed, data: `${sealed.data.slice(0, at)}${digit}${sealed.data.slice(at + 1)}` };
}

describe('secrets opened on a worker thread', () => {
  it('opens what the main thread opens, in order, under each data key of the ring', async () => {
    const opener = new SecretOpener();
    const ring = ringWith(opener);
    const before = sealMany(ring, 20);
    ring.add('kek-2', randomBytes(32), true); // a KEK rotation: two data keys in the ring
    const after = sealMany(ring, 20, 20);
    expect(new Set([...before, ...after].map((k) => k.sealed.kek))).toEqual(
      new Set(['kek-1', 'kek-2']),
    );
    const all = [...before, ...after];
    const opened = await ring.openMany(all);
    expect(opened).toEqual(all.map((k) => k.secret));
    expect(opened).toEqual(all.map((k) => ring.open(k.sealed, k.pubkey)));
    expect(opener.stats).toEqual({ worker: 40, main: 0, batches: 1 });
    // Each in a buffer of its own: a view of the batch's answer would carry the others.
    for (const secret of opened) expect(secret.buffer.byteLength).toBe(32);
  });

  it('sends the opens asked for in one turn as one message', async () => {
    const opener = new SecretOpener();
    const ring = ringWith(opener);
    const keys = sealMany(ring, 60);
    // 15 allocations of 4 keys answered together, as a group commit answers them.
    const answers = await Promise.all(
      Array.from({ length: 15 }, (_, i) => ring.openMany(keys.slice(4 * i, 4 * i + 4))),
    );
    expect(answers.flat()).toEqual(keys.map((k) => k.secret));
    expect(opener.stats).toEqual({ worker: 60, main: 0, batches: 1 });
  });

  it('refuses a tampered secret, or one moved to another pubkey, and opens the rest of its batch', async () => {
    const opener = new SecretOpener();
    const ring = ringWith(opener);
    const [a, b, c] = sealMany(ring, 3);
    if (!a || !b || !c) throw new Error('three keys were sealed');
    const results = await Promise.allSettled([
      ring.openMany([a, { ...b, sealed: tampered(b.sealed) }]),
      ring.openMany([{ ...c, pubkey: a.pubkey }]),
      ring.openMany([c]),
    ]);
    for (const refused of results.slice(0, 2))
      expect(refused).toMatchObject({
        status: 'rejected',
        reason: { code: 'STORE_CORRUPT', message: expect.stringMatching(/does not open/) },
      });
    expect(results[2]).toEqual({ status: 'fulfilled', value: [c.secret] });
    expect(opener.stats.batches).toBe(1);
  });

  it('keeps each answer with its own key when a damaged record holds a space or line break', async () => {
    const opener = new SecretOpener();
    const ring = ringWith(opener);
    const keys = sealMany(ring, 4);
    const [a, b, c, d] = keys;
    if (!a || !b || !c || !d) throw new Error('four keys were sealed');
    const broken = (data: string) => ({ ...b, sealed: { ...b.sealed, data } });
    const results = await Promise.allSettled([
      ring.openMany([a]),
      ring.openMany([broken(`${b.sealed.data.slice(0, 40)}\n0 ${c.sealed.data} ${c.pubkey}`)]),
      ring.openMany([broken(`${b.sealed.data.slice(0, 40)} ${b.sealed.data.slice(40)}`)]),
      ring.openMany([c, { ...d, pubkey: `${d.pubkey}\n` }]),
      ring.openMany([d]),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
      'fulfilled',
    ]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: [a.secret] });
    expect(results[4]).toEqual({ status: 'fulfilled', value: [d.secret] });
    expect(opener.stats).toEqual({ worker: 3, main: 3, batches: 1 });
  });

  it('opens on the main thread what a worker that stopped was asked, and all that follows', async () => {
    const opener = new SecretOpener(DYING_WORKER);
    const told: string[] = [];
    opener.onFallback = (why) => told.push(why);
    const ring = ringWith(opener);
    const keys = sealMany(ring, 8);
    const [bad] = keys.splice(4, 1);
    if (!bad) throw new Error('eight keys were sealed');
    expect(await ring.openMany(keys.slice(0, 4))).toEqual(keys.slice(0, 4).map((k) => k.secret));
    expect(opener.stats).toEqual({ worker: 0, main: 4, batches: 1 });
    await expect(ring.openMany([{ ...bad, sealed: tampered(bad.sealed) }])).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
    });
    const last = await ring.openMany(keys.slice(4));
    expect(last).toEqual(keys.slice(4).map((k) => k.secret));
    for (const secret of last) expect(secret.buffer.byteLength).toBe(32);
    expect(opener.stats).toEqual({ worker: 0, main: 8, batches: 1 });
    expect(told).toEqual(['its worker thread stopped (exit code 1)']); // once
  });

  it.each([
    ['with fewer items than asked', '{ id: batch.id, plain: new Uint8Array(0), lengths: [] }'],
    [
      'with more bytes than its lengths say',
      '{ id: batch.id, plain: new Uint8Array(64), lengths: batch.items.split("\\n").map(() => 32) }',
    ],
    ['that is not an answer at all', '"ready"'],
  ])(
    'trusts no part of an answer %s, and opens that batch on the main thread',
    async (_, reply) => {
      const opener = new SecretOpener(
        new URL(
          `data:text/javascript,${encodeURIComponent(
            `import { parentPort } from 'node:worker_threads'; parentPort.on('message', (batch) => parentPort.postMessage(${reply}));`,
          )}`,
        ),
      );
      const ring = ringWith(opener);
      const keys = sealMany(ring, 3);
      expect(await ring.openMany(keys)).toEqual(keys.map((k) => k.secret));
      expect(opener.stats).toEqual({ worker: 0, main: 3, batches: 1 });
    },
  );

  it('takes a batch from a worker that does not answer in time, and opens it here', async () => {
    const opener = new SecretOpener(SILENT_WORKER, 200);
    const told: string[] = [];
    opener.onFallback = (why) => told.push(why);
    const ring = ringWith(opener);
    const keys = sealMany(ring, 4);
    const started = Date.now();
    expect(await ring.openMany(keys)).toEqual(keys.map((k) => k.secret));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(opener.stats).toEqual({ worker: 0, main: 4, batches: 1 });
    expect(told).toEqual(['its worker thread did not answer within 200 ms']);
    // From then on, everything opens here, at once.
    expect(await ring.openMany(keys.slice(0, 2))).toEqual(keys.slice(0, 2).map((k) => k.secret));
    expect(opener.stats).toEqual({ worker: 0, main: 6, batches: 1 });
  });

  it('answers what a stopped worker left even when the fallback hook throws', async () => {
    const opener = new SecretOpener(DYING_WORKER);
    opener.onFallback = () => {
      throw new Error('a broken logger');
    };
    const ring = ringWith(opener);
    const keys = sealMany(ring, 4);
    expect(await ring.openMany(keys)).toEqual(keys.map((k) => k.secret));
    expect(opener.stats).toEqual({ worker: 0, main: 4, batches: 1 });
  });

  it('opens on the main thread when the worker cannot start', async () => {
    const opener = new SecretOpener(new URL('file:///nonexistent/secret-worker.mjs'));
    const told: string[] = [];
    opener.onFallback = (why) => told.push(why);
    const ring = ringWith(opener);
    const keys = sealMany(ring, 4);
    expect(await ring.openMany(keys)).toEqual(keys.map((k) => k.secret));
    expect(opener.stats).toEqual({ worker: 0, main: 4, batches: 1 });
    expect(told).toEqual([expect.stringMatching(/^its worker thread stopped/)]);
  });

  it('answers what is in flight when it is closed', async () => {
    const opener = new SecretOpener();
    const ring = ringWith(opener);
    const keys = sealMany(ring, 8);
    await ring.openMany(keys.slice(0, 4)); // the worker runs
    const pending = ring.openMany(keys.slice(4));
    await new Promise((resolve) => setImmediate(resolve)); // the batch is sent
    const told: string[] = [];
    opener.onFallback = (why) => told.push(why);
    await opener.close();
    expect(await pending).toEqual(keys.slice(4).map((k) => k.secret));
    expect(told).toEqual([]); // closed on purpose: nothing to tell
    expect(opener.stats.worker + opener.stats.main).toBe(8);
  });
});

describe('the worker and the process', () => {
  it('keeps a process up while an answer is awaited, and lets it end once none is', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pkm-opener-'));
    try {
      const script = join(dir, 'open.mts');
      const encryption = pathToFileURL(join(process.cwd(), 'src/store/encryption.ts')).href;
      // Nothing but the awaited answer keeps this process up; once it came, nothing does.
      await writeFile(
        script,
        [
          `import { KeyRing } from ${JSON.stringify(encryption)};`,
          `const ring = new KeyRing('kek', Buffer.alloc(32, 7));`,
          `const pubkey = '0x' + 'ab'.repeat(48);`,
          `const [plain] = await ring.openMany([{ sealed: ring.seal(new Uint8Array(32).fill(5), pubkey), pubkey }]);`,
          `process.stdout.write(String(plain?.every((b) => b === 5)));`,
        ].join('\n'),
      );
      // A process that hung on the idle worker would be killed (and this call fail); one that
      // ended before the answer would exit with 13 (an unsettled top-level await).
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script], {
        timeout: 20_000,
      });
      expect(stdout).toBe('true');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
