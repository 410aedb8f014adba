import { Level } from 'level';
import { mkdtempSync } from 'node:fs';
const db = new Level(mkdtempSync('/tmp/ana/db-'));
await db.open();
const subs = ['keys','pods','meta','events','cooling'].map(n => db.sublevel(n, { keyEncoding: 'utf8', valueEncoding: 'utf8' }));
const val = 'x'.repeat(500);
const N = 16, R = 20000;
async function run(name, fn) {
  for (let w = 0; w < 3; w++) {
    const t = process.hrtime.bigint();
    for (let r = 0; r < R; r += 10) await fn(r);
    const us = Number(process.hrtime.bigint() - t) / 1000 / (R/10 * N * 10);
    if (w==2) console.log(name, us.toFixed(2), 'us/op');
  }
}
const key = (r, i) => `${String(r).padStart(16,'0')}!0x${i}`;
for (let k = 0; k < 2; k++) {
await run('chained+sublevel', async (r) => { const b = db.batch(); for (let j = 0; j < 10; j++) for (let i = 0; i < N; i++) b.put(key(r+j, i), val, { sublevel: subs[i % 5] }); await b.write(); });
await run('chained root prefixed', async (r) => { const b = db.batch(); for (let j = 0; j < 10; j++) for (let i = 0; i < N; i++) b.put(`!${['keys','pods','meta','events','cooling'][i%5]}!` + key(r+j, i), val); await b.write(); });
await run('array root prefixed', async (r) => { const ops = []; for (let j = 0; j < 10; j++) for (let i = 0; i < N; i++) ops.push({ type: 'put', key: `!${['keys','pods','meta','events','cooling'][i%5]}!` + key(r+j, i), value: val }); await db.batch(ops); });
await run('array sublevel', async (r) => { const ops = []; for (let j = 0; j < 10; j++) for (let i = 0; i < N; i++) ops.push({ type: 'put', key: key(r+j, i), value: val, sublevel: subs[i%5] }); await db.batch(ops); });
}
