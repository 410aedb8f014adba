import { Level } from 'level';
import { mkdtempSync } from 'node:fs';
const db = new Level(mkdtempSync('/tmp/ana/db-'));
await db.open();
const sub = db.sublevel('keys', { keyEncoding: 'utf8', valueEncoding: 'utf8' });
const val = 'x'.repeat(700);
const N = 16, R = 20000;
async function run(name, fn) {
  for (let w = 0; w < 3; w++) {
    const t = process.hrtime.bigint();
    for (let r = 0; r < R; r++) await fn(r);
    const us = Number(process.hrtime.bigint() - t) / 1000 / (R * N);
    if (w==2) console.log(name, us.toFixed(2), 'us/op');
  }
}
await run('chained+sublevel', async (r) => { const b = db.batch(); for (let i = 0; i < N; i++) b.put(`k${r}-${i}`, val, { sublevel: sub }); await b.close(); });
await run('chained root prefixed', async (r) => { const b = db.batch(); for (let i = 0; i < N; i++) b.put(`!keys!k${r}-${i}`, val); await b.close(); });
await run('chained+sublevel', async (r) => { const b = db.batch(); for (let i = 0; i < N; i++) b.put(`k${r}-${i}`, val, { sublevel: sub }); await b.close(); });
await run('chained root prefixed', async (r) => { const b = db.batch(); for (let i = 0; i < N; i++) b.put(`!keys!k${r}-${i}`, val); await b.close(); });
