// Where a benchmarked server's time goes: with PKM_BENCH_CPU_PROF=DIR, bench/lib.ts spawns every
// server under `node --cpu-prof --cpu-prof-dir DIR`; then
//   node --import tsx bench/cpu-profile.ts FILE.cpuprofile [N]
// prints, from the first HTTP request on (the start's module loading left out):
//   - the time by phase of a request (PHASES);
//   - self time by what ran: a package, a node: module, the project's own code, a native
//     function (JSON's parse and stringify, writev...), the garbage collector, idle;
//   - self time by the project's function nearest on the stack, the package or module under it
//     named too: express's routing is charged to the route's handler that it runs, zod's
//     checks to the codec that called them;
//   - the same by the project's file nearest on the stack;
//   - the top N functions by self time.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

const CallFrame = z.object({
  functionName: z.string(),
  url: z.string(),
  lineNumber: z.number(),
});
const ProfileNode = z.object({
  id: z.number(),
  callFrame: CallFrame,
  children: z.array(z.number()).optional(),
});
const Profile = z.object({
  nodes: z.array(ProfileNode),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
});
type Node = z.infer<typeof ProfileNode>;
type Frame = z.infer<typeof CallFrame>;

/**
 * Where an allocation's time goes, by what is on the stack: the first phase whose test passes
 * takes the sample (so the store's codecs are not charged to the route that called them).
 */
const PHASES: ReadonlyArray<readonly [string, (frames: readonly Frame[]) => boolean]> = [
  ['idle (waiting: fsync, the network)', (s) => s[0]?.functionName === '(idle)'],
  ['garbage collector', (s) => s[0]?.functionName === '(garbage collector)'],
  ['store: record codecs (zod checks, JSON)', (s) => s.some(inFile('store/records.js'))],
  ['store: secrets (AES-GCM)', (s) => s.some(inFile('store/encryption.js'))],
  ['store: batch building and LevelDB', (s) => s.some(inFile('store/store.js', 'write'))],
  [
    'allocation: allocator, transaction, group commit, store reads',
    (s) => s.some((f) => /\/(dist|src)\/(allocation|store)\//.test(f.url)),
  ],
  [
    'request log and metrics',
    (s) => s.some((f) => /\/node_modules\/(pino|prom-client|sonic-boom)\//.test(f.url)),
  ],
  [
    'response: res.json or json-io.ts, and node:http writes',
    (s) =>
      s.some(
        (f) =>
          (f.functionName === 'json' && f.url.includes('/express/')) ||
          f.functionName === 'sendJson',
      ),
  ],
  [
    'request body: express.json or json-io.ts',
    (s) =>
      s.some((f) => /\/node_modules\/(body-parser|raw-body)\//.test(f.url)) ||
      // json-io.ts's reader itself, not the route it hands the body to
      s.find((f) => ownCode(f.url))?.url.endsWith('/json-io.js') === true,
  ],
  [
    'express: routing and middleware',
    (s) => s.some((f) => /\/node_modules\/(express|router)\//.test(f.url)),
  ],
  [
    'node:http (parse, sockets)',
    (s) => s.some((f) => /^node:(_http|net|internal\/stream)/.test(f.url)),
  ],
];

function inFile(file: string, fn?: string): (f: Frame) => boolean {
  return (f) => f.url.endsWith(`/${file}`) && (fn === undefined || f.functionName === fn);
}

function phaseOf(frames: readonly Frame[]): string {
  return PHASES.find(([, test]) => test(frames))?.[0] ?? 'other';
}

/** The frame that marks the first request: samples before it are the server's start. */
const FIRST_REQUEST = 'parserOnIncoming';

const ownCode = (url: string) => url.includes('/dist/') || url.includes('/src/');

/** A function's name and where it is, shortened to the package or the project's file. */
function label(f: Frame): string {
  const short = f.url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, '')
    .replace(/^.*\/(dist|src)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${short}:${f.lineNumber + 1}`;
}

/** What ran: a package, a node: module, the project's code, a native function, GC or idle. */
function category(f: Frame): string {
  if (f.url === '')
    return f.functionName.startsWith('(') ? f.functionName : `native ${f.functionName}`;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f.url)?.[1];
  if (pkg) return pkg;
  if (f.url.startsWith('node:')) return f.url;
  return ownCode(f.url) ? 'pkm code' : f.url;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly byPhase: Array<[string, number]>;
  readonly byCategory: Array<[string, number]>;
  readonly byOwner: Array<[string, number]>;
  readonly byOwnerFile: Array<[string, number]>;
  readonly byFunction: Array<[string, number]>;
}

/** Milliseconds per category, per owning project function and per function, largest first. */
export function summarize(text: string): ProfileSummary {
  const profile = Profile.parse(JSON.parse(text));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, Node>();
  for (const n of profile.nodes)
    for (const c of n.children ?? []) if (byId.has(c)) parent.set(c, n);
  const stackOf = (leaf: Node): Node[] => {
    const stack: Node[] = [];
    for (let n: Node | undefined = leaf; n; n = parent.get(n.id)) stack.push(n);
    return stack;
  };
  const add = (m: Map<string, number>, key: string, ms: number) =>
    m.set(key, (m.get(key) ?? 0) + ms);
  const byPhase = new Map<string, number>();
  const byCategory = new Map<string, number>();
  const byOwner = new Map<string, number>();
  const byOwnerFile = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let started = false;
  let totalMs = 0;
  profile.samples.forEach((id, i) => {
    const leaf = byId.get(id);
    if (!leaf) return;
    const stack = stackOf(leaf);
    started ||= stack.some((n) => n.callFrame.functionName === FIRST_REQUEST);
    if (!started) return;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    totalMs += ms;
    const what = category(leaf.callFrame);
    add(byPhase, phaseOf(stack.map((n) => n.callFrame)), ms);
    add(byCategory, what, ms);
    add(byFunction, label(leaf.callFrame), ms);
    const owner = stack.find((n) => ownCode(n.callFrame.url));
    add(byOwnerFile, owner ? label(owner.callFrame).replace(/^.* (.*):\d+$/, '$1') : what, ms);
    add(
      byOwner,
      `${owner ? label(owner.callFrame) : '(no project frame)'} <- ${what === 'pkm code' ? 'itself' : what}`,
      ms,
    );
  });
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    totalMs,
    byPhase: sorted(byPhase),
    byCategory: sorted(byCategory),
    byOwner: sorted(byOwner),
    byOwnerFile: sorted(byOwnerFile),
    byFunction: sorted(byFunction),
  };
}

async function main(): Promise<void> {
  const [file, top = '25'] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpu-profile FILE.cpuprofile [N]');
  const summary = summarize(await readFile(file, 'utf8'));
  const n = Number(top);
  let out = `${summary.totalMs.toFixed(0)} ms sampled from the first request on\n`;
  const lines = (title: string, rows: Array<[string, number]>) => {
    out += `\n${title}:\n`;
    for (const [name, ms] of rows.slice(0, n)) {
      const pct = ((100 * ms) / summary.totalMs).toFixed(1).padStart(5);
      out += `${pct}% ${ms.toFixed(0).padStart(6)} ms  ${name}\n`;
    }
  };
  lines('by phase', summary.byPhase);
  lines('self time by what ran', summary.byCategory);
  lines('self time by the nearest project file (or what ran, if none)', summary.byOwnerFile);
  lines('self time by the nearest project function <- what ran', summary.byOwner);
  lines('self time by function', summary.byFunction);
  // A reader that stops early (| head) is no error.
  process.stdout.on('error', () => process.exit(0));
  process.stdout.write(out);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
