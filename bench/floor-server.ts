// The floor for bench/allocate: bare express + level, one batch per request of the same size
// as a pool allocation of 4 keys (4 key records, 4 index deletes, 1 pod record, 1 counter).
// It does no validation, no locking and no index reads: the least such a server can do.
import { randomBytes } from 'node:crypto';
import express from 'express';
import { Level } from 'level';

const [dir] = process.argv.slice(2);
if (!dir) throw new Error('usage: floor-server DATA_DIR');
const db = new Level<string, string>(dir);
await db.open();
const keys = db.sublevel<string, string>('keys', {});
const free = db.sublevel<string, string>('unallocated', {});
const pods = db.sublevel<string, string>('pods', {});
const meta = db.sublevel<string, string>('meta', {});
let n = 0;

const app = express();
app.use(express.json());
app.post('/v1/pods/:pod/keys', async (req, res) => {
  const count = Number((req.body as { count?: unknown }).count);
  const handed = Array.from({ length: count }, () => ({
    pubkey: `0x${randomBytes(48).toString('hex')}`,
    secretKey: `0x${randomBytes(32).toString('hex')}`,
  }));
  await db.batch([
    ...handed.map((k) => ({
      type: 'put' as const,
      sublevel: keys,
      key: k.pubkey,
      value: JSON.stringify(k),
    })),
    ...handed.map((k) => ({ type: 'del' as const, sublevel: free, key: `${n++}!${k.pubkey}` })),
    {
      type: 'put',
      sublevel: pods,
      key: req.params.pod,
      value: JSON.stringify(handed.map((k) => k.pubkey)),
    },
    { type: 'put', sublevel: meta, key: 'counts', value: String(n) },
  ]);
  res.json({ pod: req.params.pod, keys: handed });
});
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => server.close(() => db.close().then(() => process.exit(0))));
