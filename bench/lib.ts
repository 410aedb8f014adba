// Shared bench tools: child servers, an HTTP load generator, and the JSON figure lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';

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

/** Spawns a server and waits for a JSON log line carrying its url. */
export async function spawnServer(args: string[]): Promise<ChildServer> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const url = (JSON.parse(line) as { url?: string }).url;
      if (url) resolve(url);
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
  // From here on the server's log lines are drained unread: this process is the load generator.
  lines.close();
  proc.stdout.resume();
  return {
    url,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

export interface LoadResult {
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
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
  const url = new URL(base);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: path(i),
          headers: {
            ...headers(i),
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} for ${path(i)}`));
            latencies.push(performance.now() - t0);
            resolve();
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    seconds,
    perSecond: count / seconds,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
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
