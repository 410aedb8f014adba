import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const want = new RegExp(process.argv[3] ?? '/(dist|src)/(allocation|store)/');
const byId = new Map<number, any>(p.nodes.map((n: any) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const stack = (id: number) => { const s = []; for (let c: number | undefined = id; c !== undefined; c = parent.get(c)) s.push(byId.get(c).callFrame); return s; };
const excl = /store\/(records|encryption)\.js/;
const tally = new Map<string, number>(); let started = false; let total = 0;
p.samples.forEach((id: number, i: number) => {
  const s = stack(id);
  if (!started) { if (s.some((f: any) => f.functionName === 'parserOnIncoming')) started = true; else return; }
  const dt = p.timeDeltas[i] ?? 0;
  if (s[0].functionName.startsWith('(')) return;
  if (s.some((f: any) => excl.test(f.url) || (f.functionName === 'write' && f.url.endsWith('store/store.js')))) return;
  if (!s.some((f: any) => want.test(f.url))) return;
  const own = s.find((f: any) => /\/(dist|src)\//.test(f.url));
  const k = `${own.functionName} ${own.url.replace(/.*\/dist\//, '')}:${own.lineNumber + 1} <- ${s[0].functionName} ${s[0].url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '')}`;
  tally.set(k, (tally.get(k) ?? 0) + dt); total += dt;
});
console.log('total ms', (total / 1000).toFixed(0));
[...tally].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[4] ?? 50)).forEach(([k, t]) => console.log((t / 1000).toFixed(0).padStart(6), k));
