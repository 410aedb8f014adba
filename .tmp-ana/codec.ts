import { keyRecordCodec, podRecordCodec } from '../src/store/records.js';
const pk = '0x' + 'ab'.repeat(48);
const now = Date.now();
const rec = { pubkey: pk, secret: { alg: 'aes-256-gcm', data: 'cd'.repeat(60) }, state: 'allocated' as const, pod: 'validator-12', since: now, createdAt: now,
  history: [{ at: now, event: 'created' as const }, { at: now, event: 'allocated' as const, pod: 'released-1' }, { at: now, event: 'released' as const, pod: 'released-1' }, { at: now, event: 'allocated' as const, pod: 'validator-12' }] };
const text = JSON.stringify(rec);
function time(name: string, fn: () => unknown, n = 200000) {
  for (let w = 0; w < 3; w++) { const t = process.hrtime.bigint(); for (let i = 0; i < n; i++) fn(); if (w === 2) console.log(name, (Number(process.hrtime.bigint() - t) / 1000 / n).toFixed(2), 'us'); }
}
time('encode', () => keyRecordCodec.encode(rec));
time('stringify', () => JSON.stringify(rec));
time('decode', () => keyRecordCodec.decode(text));
time('parse', () => JSON.parse(text));
