// Shared bench tools: child servers, an HTTP load generator, and the JSON figure lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';

export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: number;
  readonly ratio?: number;
  readonly target?: string;
}

/** One JSON object per figure on stdout. */
export function report(f: Figure): void {
  process.stdout.write(`${JSON.stringify(f)}\n`);
}

export interface ChildServer {
  readonly url: string;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** Children spawned and not yet stopped: killed if this process exits first (a failed run). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

/** How long a stopped server gets to exit before it is killed. */
const STOP_GRACE_MS = 10_000;

/**
 * With PKM_BENCH_CPU_PROF=DIR, every server runs under V8's sampling profiler and writes its
 * .cpuprofile there when it exits (bench/cpu-profile.ts reads one).
 */
function profilerFlags(): string[] {
  const dir = process.env.PKM_BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [];
}

/** Spawns a server and waits for a JSON log line carrying its url. */
export async function spawnServer(args: string[]): Promise<ChildServer> {
  const proc = spawn(process.execPath, [...profilerFlags(), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  live.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => live.delete(proc));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
  };
  const lines = createInterface({ input: proc.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const url = (JSON.parse(line) as { url?: string }).url;
      if (url) resolve(url);
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  // From here on the server's log lines are drained unread: this process is the load generator.
  lines.close();
  proc.stdout.resume();
  return { url, proc, stop };
}

export interface LoadResult {
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50ms: number;
  readonly p99ms: number;
  /** Answers that said "ask again" and were, as a client would (see LoadOptions.retry). */
  readonly retried: number;
  /** Every request's latency, sorted: runs merged take their percentiles from these. */
  readonly latenciesMs: readonly number[];
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Sends `count` POSTs of `body` to path(i), `concurrency` at a time, over keep-alive sockets. */
export async function load(
  base: string,
  path: (i: number) => string,
  body: string,
  count: number,
  concurrency: number,
  headers: (i: number) => Record<string, string> = () => ({}),
): Promise<LoadResult> {
  return loadSpread({ bases: [base], path, body, count, concurrency, headers });
}

export interface LoadOptions {
  /** Request i goes to bases[i % bases.length]: round-robin over several servers. */
  readonly bases: readonly string[];
  readonly path: (i: number) => string;
  readonly body: string;
  readonly count: number;
  /** Requests in flight, over all servers. */
  readonly concurrency: number;
  readonly headers?: (i: number) => Record<string, string>;
  /**
   * Error codes of a 503 that are asked again after its Retry-After, as `pkm client` does
   * (src/client/retry.ts waits at least that long), at most MAX_RETRIES times; the request's
   * latency then runs from its first send. Any other answer but 200 fails the load.
   */
  readonly retry?: ReadonlySet<string>;
}

const MAX_RETRIES = 10;

const ErrorBody = z.object({ error: z.object({ code: z.string() }) });

/** The error code of a refusal's body, if it has one. */
function errorCode(text: string): string | undefined {
  try {
    const parsed = ErrorBody.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.error.code : undefined;
  } catch {
    return undefined;
  }
}

interface Answer {
  readonly status: number;
  /** The body of an answer other than 200 (a 200's is only drained). */
  readonly refusal: string;
  readonly retryAfterS: number;
}

/** load() over one or several servers, each over keep-alive sockets of its own. */
export async function loadSpread(opts: LoadOptions): Promise<LoadResult> {
  const { path, body, count, concurrency, headers = () => ({}), retry = new Set() } = opts;
  if (opts.bases.length === 0) throw new Error('load needs at least one server');
  const targets = opts.bases.map((base) => ({
    url: new URL(base),
    agent: new Agent({ keepAlive: true, maxSockets: concurrency }),
  }));
  const latencies: number[] = [];
  let retried = 0;
  let next = 0;
  const send = (i: number) =>
    new Promise<Answer>((resolve, reject) => {
      const target = targets[i % targets.length];
      if (!target) throw new Error(`no server for request ${i}`);
      const req = request(
        {
          agent: target.agent,
          host: target.url.hostname,
          port: target.url.port,
          method: 'POST',
          path: path(i),
          headers: {
            ...headers(i),
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          let refusal = '';
          if (status === 200) res.resume();
          else res.setEncoding('utf8').on('data', (chunk: string) => (refusal += chunk));
          const retryAfter = Number(res.headers['retry-after']);
          res.on('end', () =>
            resolve({ status, refusal, retryAfterS: retryAfter > 0 ? retryAfter : 0 }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const one = async (i: number): Promise<void> => {
    const t0 = performance.now();
    for (let attempt = 0; ; attempt++) {
      const answer = await send(i);
      if (answer.status === 200) break;
      const code = errorCode(answer.refusal);
      const again =
        answer.status === 503 && code !== undefined && retry.has(code) && attempt < MAX_RETRIES;
      if (!again)
        throw new Error(`HTTP ${answer.status} for ${path(i)}: ${answer.refusal.slice(0, 500)}`);
      retried++;
      await sleep(answer.retryAfterS * 1000);
    }
    latencies.push(performance.now() - t0);
  };
  const start = performance.now();
  let seconds: number;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) await one(next++);
      }),
    );
    seconds = (performance.now() - start) / 1000;
  } finally {
    for (const { agent } of targets) agent.destroy();
  }
  latencies.sort((a, b) => a - b);
  return {
    seconds,
    perSecond: count / seconds,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    retried,
    latenciesMs: latencies,
  };
}

/** Median wall time of `runs` GETs of a URL, reading the whole body. */
export async function timeGet(url: string, runs: number): Promise<{ ms: number; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    bytes = (await res.arrayBuffer()).byteLength;
    if (!res.ok) throw new Error(`HTTP ${res.status} for ${url}`);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: percentile(times, 50), bytes };
}

/** A benchmark's size from the environment (smaller while iterating), or its default. */
export function sizeFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} takes a whole number >= 1`);
  return n;
}
