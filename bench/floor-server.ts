// The floor for bench/allocate (issue 17, point 4): node:http + level, writing per request the
// batch a real allocation of n keys writes, synced the way `pkm server` syncs: each batch with
// `sync: true`, and the requests that arrive while one batch is being written go together in
// the next (group commit, as src/allocation/group-commit.ts does). An answer is sent only once
// its batch is synced. It does no validation, no locking, no reads and no encryption: the least
// a server with the same durability can do. The batch, as src/store/store.ts's commit() writes
// it for an allocation (bench/allocate checks the counts of the real server's runs):
//   - fresh pool: per key a record put and an `unallocated` index delete; the pod's record;
//     the counters; one `allocate` audit event;
//   - recycled pool (released keys, reuse.ts): per key a record put (with a longer history) and
//     a `cooling` index delete, and a `reuse` audit event; the pod's record; its previous
//     holder's record, left with fewer cooling keys (put) or none (delete), in turn; the
//     counters; one `allocate` audit event.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Level } from 'level';
import { WRITE_BUFFER_BYTES } from '../src/store/buckets.js';

const [dir, pool = 'fresh'] = process.argv.slice(2);
if (!dir || (pool !== 'fresh' && pool !== 'recycled'))
  throw new Error('usage: floor-server DATA_DIR [fresh|recycled]');
// LevelDB configured as the store configures it (buckets.ts).
const db = new Level<string, string>(dir, { writeBufferSize: WRITE_BUFFER_BYTES });
await db.open();
const bucket = (name: string) => db.sublevel<string, string>(name, {});
const keys = bucket('keys');
const index = bucket(pool === 'fresh' ? 'unallocated' : 'cooling');
const pods = bucket('pods');
const meta = bucket('meta');
const events = bucket('events');
type Op =
  | { type: 'put'; sublevel: typeof keys; key: string; value: string }
  | { type: 'del'; sublevel: typeof keys; key: string };

let seq = 0;
let allocations = 0;
/** The sealed secret's size as store/encryption.ts writes it: IV, 32 bytes, tag, in hex. */
const KEK_ID = randomBytes(8).toString('hex');
const pad = (n: number) => String(n).padStart(16, '0');

/** A key record of the real one's shape and size (records.ts): sealed secret, history. */
function keyRecord(pubkey: string, pod: string, now: number): string {
  const history: Array<{ at: number; event: string; pod?: string }> = [
    { at: now, event: 'created' },
  ];
  if (pool === 'recycled')
    history.push(
      { at: now, event: 'allocated', pod: `released-${pad(seq)}` },
      { at: now, event: 'released', pod: `released-${pad(seq)}` },
    );
  history.push({ at: now, event: 'allocated', pod });
  return JSON.stringify({
    pubkey,
    secret: {
      alg: 'aes-256-gcm',
      data: `${pubkey.slice(2, 98)}${pubkey.slice(2, 26)}`,
      kek: KEK_ID,
    },
    state: 'allocated',
    pod,
    since: now,
    createdAt: now,
    history,
  });
}

/** The batch one allocation of `count` keys writes (see the top of this file). */
function allocationBatch(pod: string, pubkeys: readonly string[]): Op[] {
  const now = Date.now();
  const ops: Op[] = [];
  for (const pubkey of pubkeys) {
    ops.push({ type: 'put', sublevel: keys, key: pubkey, value: keyRecord(pubkey, pod, now) });
    ops.push({ type: 'del', sublevel: index, key: `${pad(now)}!${pubkey}` });
  }
  ops.push({
    type: 'put',
    sublevel: pods,
    key: pod,
    value: JSON.stringify({ keys: pubkeys, cooling: [], since: now }),
  });
  if (pool === 'recycled') {
    // Every second allocation empties its previous holder (which held two allocations' worth).
    const previous = `released-${pad(Math.floor(allocations / 2))}`;
    ops.push(
      allocations % 2 === 0
        ? {
            type: 'put',
            sublevel: pods,
            key: previous,
            value: JSON.stringify({ keys: [], cooling: pubkeys, since: now }),
          }
        : { type: 'del', sublevel: pods, key: previous },
    );
  }
  allocations++;
  ops.push({
    type: 'put',
    sublevel: meta,
    key: 'counts',
    value: JSON.stringify({
      free: allocations,
      allocated: allocations * 4,
      cooling: 0,
      retired: 0,
      depositing: 0,
      'deposit-failed': 0,
      conflict: 0,
      reported: 0,
      fenced: 0,
      pods: allocations,
    }),
  });
  const event = (type: string, pubkeys: readonly string[], detail?: string) =>
    ops.push({
      type: 'put',
      sublevel: events,
      key: pad(seq),
      value: JSON.stringify({ seq: seq++, at: now, type, pod, pubkeys, detail }),
    });
  event('allocate', pubkeys);
  if (pool === 'recycled')
    for (const pubkey of pubkeys)
      event(
        'reuse',
        [pubkey],
        `from released-${pad(seq)}, released at ${new Date(now).toISOString()}`,
      );
  return ops;
}

/** Group commit: one synced batch at a time; what arrives meanwhile goes in the next one. */
let queued: Array<{ ops: Op[]; done: (err?: unknown) => void }> = [];
let writing = false;
async function drain(): Promise<void> {
  writing = true;
  while (queued.length > 0) {
    const group = queued;
    queued = [];
    try {
      // A chained batch of prefixed keys, as store.ts writes one: the array form, or the
      // `sublevel` option per operation, cost several times more.
      const batch = db.batch();
      for (const { ops } of group)
        for (const op of ops)
          if (op.type === 'put') batch.put(op.sublevel.prefix + op.key, op.value);
          else batch.del(op.sublevel.prefix + op.key);
      await batch.write({ sync: true });
      for (const g of group) g.done();
    } catch (err) {
      for (const g of group) g.done(err);
    }
  }
  writing = false;
}
function commit(ops: Op[]): Promise<void> {
  return new Promise((resolve, reject) => {
    queued.push({ ops, done: (err) => (err === undefined ? resolve() : reject(err)) });
    if (!writing) void drain();
  });
}

const POD_KEYS = /^\/v1\/pods\/([^/]+)\/keys$/;

async function allocate(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const pod = POD_KEYS.exec(req.url ?? '')?.[1];
  let text = '';
  for await (const chunk of req) text += String(chunk);
  if (req.method !== 'POST' || pod === undefined) {
    res.writeHead(404).end();
    return;
  }
  const count = Number((JSON.parse(text) as { count?: unknown }).count);
  // Key-shaped bytes from one draw of randomness per request.
  const random = randomBytes(80 * count).toString('hex');
  const handed = Array.from({ length: count }, (_, i) => ({
    pubkey: `0x${random.slice(160 * i, 160 * i + 96)}`,
    secretKey: `0x${random.slice(160 * i + 96, 160 * i + 160)}`,
  }));
  await commit(
    allocationBatch(
      pod,
      handed.map((k) => k.pubkey),
    ),
  );
  const body = JSON.stringify({ pod, keys: handed });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const server = createServer((req, res) => {
  allocate(req, res).catch(() => res.writeHead(500).end());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => {
  server.close(() => db.close().then(() => process.exit(0)));
  server.closeIdleConnections();
});
