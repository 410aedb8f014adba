import { z } from 'zod';
const PUBKEY = /^0x[0-9a-f]{96}$/;
const Pubkey = z.string().regex(PUBKEY);
const KeyEvent = z.object({ at: z.number().int().nonnegative(), event: z.enum(['created','allocated','released']), pod: z.string().optional() });
const mk = (strict: boolean) => { const o = z.object({ pubkey: Pubkey, secret: z.object({ alg: z.string().min(1), data: z.string() }).optional(), state: z.enum(['allocated','cooling']), pod: z.string().min(1).optional(), since: z.number().int().nonnegative(), createdAt: z.number().int().nonnegative(), history: z.array(strict ? KeyEvent.strict() : KeyEvent).max(16) }); return strict ? o.strict() : o; };
const pk = '0x' + 'ab'.repeat(48); const now = Date.now();
const rec = { pubkey: pk, secret: { alg: 'aes-256-gcm', data: 'cd'.repeat(60) }, state: 'allocated', pod: 'validator-12', since: now, createdAt: now,
  history: [{ at: now, event: 'created' }, { at: now, event: 'allocated', pod: 'released-1' }, { at: now, event: 'released', pod: 'released-1' }, { at: now, event: 'allocated', pod: 'validator-12' }] };
function time(name: string, fn: () => unknown, n = 200000) {
  for (let w = 0; w < 3; w++) { const t = process.hrtime.bigint(); for (let i = 0; i < n; i++) fn(); if (w === 2) console.log(name, (Number(process.hrtime.bigint() - t) / 1000 / n).toFixed(2), 'us'); }
}
const s1 = mk(true), s2 = mk(false), s3 = mk(true).refine((r) => r.pod !== undefined);
time('strict', () => s1.safeParse(rec));
time('loose', () => s2.safeParse(rec));
time('strict+refine', () => s3.safeParse(rec));
time('stringify', () => JSON.stringify(rec));
