// bench/pg-profile: where an allocate-pg run's time goes, with PKM_BENCH_PG_PROFILE=1 (kept out
// of the plain measurement, which it slows a little). Per run:
//   - CPU, in cores busy on average: the pkm servers, PostgreSQL, the load generator, and the
//     whole machine (what exceeds the others' sum is somebody else's work on it);
//   - what the database's sessions were doing, sampled from pg_stat_activity: waiting for a row
//     lock (the counters row every commit locks: src/store/pg/write.ts), for the WAL's flush,
//     running, or idle in a transaction while its pkm server works between two statements;
//   - from pg_stat_statements: the statements (each a round trip) per allocation and the time
//     the database spent executing them; the commits written and those refused
//     (STORE_CONFLICT: write.ts's ROLLBACK, nothing written, the group runs again); how often
//     each request ran (two pool reads per run, so a raced request shows as more than one
//     run); and the mean time of the statement that takes the counters row's lock.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import { OLDEST_SQL } from '../src/store/pg/pool-reads.js';
import { BigintText, parseRows } from '../src/store/pg/rows.js';
import type { PgBinaries, PgServer } from '../test/support/postgres.js';
import type { Figure } from './lib.js';

const run = promisify(execFile);

/** /proc's clock ticks per second (USER_HZ, 100 on Linux whatever the kernel's HZ). */
const TICKS_PER_S = 100;
/** How often pg_stat_activity is sampled. */
const SAMPLE_MS = 20;

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  // A lost connection fails the query; unheard, its 'error' event would end the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const DataDirRow = z.object({ data_directory: z.string() });

/** Where the cluster keeps its files (PGDATA). */
export async function dataDirectory(cluster: PgServer): Promise<string> {
  const res = await withClient(cluster.url, (c) => c.query('SHOW data_directory'));
  const [row] = parseRows(DataDirRow, res.rows, 'data_directory');
  if (!row) throw new Error('PostgreSQL did not say where its data directory is');
  return row.data_directory;
}

/**
 * Loads pg_stat_statements: it must be preloaded, so the cluster restarts (pg_ctl restart
 * reuses the options it was started with, from postmaster.opts). As root, the cluster belongs
 * to `postgres` (test/support/postgres.ts).
 */
export async function enableStatementStats(cluster: PgServer, bins: PgBinaries): Promise<void> {
  await withClient(cluster.url, (c) =>
    c.query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"),
  );
  const data = await dataDirectory(cluster);
  const argv = [bins.pgCtl, '-D', data, '-l', join(data, 'restart.log'), '-m', 'fast', '-w'];
  const [cmd, ...args] =
    process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
  await run(cmd ?? '', [...args, '-t', '30', 'restart'], { timeout: 60_000 });
  for (let tries = 0; ; tries++) {
    try {
      await withClient(cluster.url, (c) =>
        c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements'),
      );
      return;
    } catch (err) {
      if (tries >= 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The postmaster's pid (the first line of postmaster.pid). */
export async function postmasterPid(cluster: PgServer): Promise<number> {
  const text = await readFile(join(await dataDirectory(cluster), 'postmaster.pid'), 'utf8');
  const pid = Number(text.split('\n')[0]);
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error('postmaster.pid holds no pid');
  return pid;
}

/** /proc/PID/stat's fields after the command name (which may hold spaces): [state, ppid, …]. */
async function statFields(pid: number): Promise<string[] | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text?.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** User and system CPU seconds of a process, all its threads (0 once it is gone). */
async function cpuSeconds(pid: number): Promise<number> {
  const f = await statFields(pid);
  // utime and stime are fields 14 and 15 of stat(5); these fields start at field 3.
  return f ? (Number(f[11]) + Number(f[12])) / TICKS_PER_S : 0;
}

/** A process and its children (PostgreSQL's backends are the postmaster's children). */
async function withChildren(pid: number): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
  const parents = await Promise.all(pids.map(async (p) => Number((await statFields(p))?.[1])));
  return [pid, ...pids.filter((_, i) => parents[i] === pid)];
}

/** CPU seconds every core of the machine was busy (not idle, not waiting for I/O). */
async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return (total - (ticks[3] ?? 0) - (ticks[4] ?? 0)) / TICKS_PER_S;
}

async function cpuOf(pids: readonly number[]): Promise<Map<number, number>> {
  return new Map(await Promise.all(pids.map(async (p) => [p, await cpuSeconds(p)] as const)));
}

/** Seconds used between two readings; a process new since the first counts whole. */
function used(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, s] of after) sum += s - (before.get(pid) ?? 0);
  return sum;
}

const ActivityRow = z.object({
  state: z.string().nullable(),
  type: z.string().nullable(),
  event: z.string().nullable(),
});
type Activity = z.infer<typeof ActivityRow>;

const ACTIVITY_SQL = `SELECT state, wait_event_type AS type, wait_event AS event
  FROM pg_stat_activity
  WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`;

const WAITS = ['lock', 'wal', 'running', 'other_wait', 'idle_in_transaction'] as const;
type Wait = (typeof WAITS)[number];

/** What a session is doing; undefined: idle between transactions (its server sends nothing). */
function classify(a: Activity): Wait | undefined {
  if (a.state === 'idle in transaction') return 'idle_in_transaction';
  if (a.state !== 'active') return undefined;
  if (a.type === null) return 'running';
  if (a.type === 'Lock') return 'lock';
  if (a.event?.startsWith('WAL')) return 'wal';
  return 'other_wait';
}

/** Samples pg_stat_activity until stopped; resolves with the mean sessions in each state. */
function sampleActivity(url: string, database: string): () => Promise<Record<Wait, number>> {
  const client = new pg.Client({ connectionString: url });
  // A sampler that loses its connection (the cluster stopped after a failed run) only stops
  // sampling; the run's own error is the one to see.
  client.on('error', () => undefined);
  const sums: Record<Wait, number> = {
    lock: 0,
    wal: 0,
    running: 0,
    other_wait: 0,
    idle_in_transaction: 0,
  };
  let samples = 0;
  let busy = false;
  const connected = client.connect();
  connected.catch(() => undefined);
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void connected
      .then(() => client.query(ACTIVITY_SQL, [database]))
      .then((res) => {
        for (const row of parseRows(ActivityRow, res.rows, 'pg_stat_activity')) {
          const wait = classify(row);
          if (wait) sums[wait]++;
        }
        samples++;
      })
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, SAMPLE_MS);
  return async () => {
    clearInterval(timer);
    await client.end().catch(() => undefined);
    const mean = { ...sums };
    for (const w of WAITS) mean[w] = samples > 0 ? sums[w] / samples : Number.NaN;
    return mean;
  };
}

const StatementRow = z.object({
  query: z.string(),
  calls: BigintText,
  mean_ms: z.number(),
  total_ms: z.number(),
});

const STATEMENTS_SQL = `SELECT s.query, s.calls,
    s.mean_exec_time AS mean_ms, s.total_exec_time AS total_ms
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`;

const oneLine = (sql: string) => sql.replace(/\s+/g, ' ').trim();

/** The commits, refusals, request runs and lock time of one database's statements. */
async function statementFigures(
  url: string,
  database: string,
  allocations: number,
): Promise<Array<Omit<Figure, 'name'> & { readonly part: string }>> {
  const res = await withClient(url, (c) => c.query(STATEMENTS_SQL, [database]));
  const rows = parseRows(StatementRow, res.rows, 'pg_stat_statements');
  if (process.env.PKM_BENCH_PG_STATEMENTS === '1')
    for (const r of [...rows].sort((a, b) => b.calls - a.calls).slice(0, 12))
      process.stderr.write(
        `${database} ${(r.calls / allocations).toFixed(2)}/alloc ${r.mean_ms.toFixed(3)} ms: ${oneLine(r.query).slice(0, 160)}\n`,
      );
  const of = (match: (q: string) => boolean) => rows.filter((r) => match(oneLine(r.query)));
  const calls = (match: (q: string) => boolean) => of(match).reduce((n, r) => n + r.calls, 0);
  const oldest = oneLine(OLDEST_SQL);
  const lock = of(
    (q) => q.startsWith('SELECT key, value FROM pkm_meta') && q.endsWith('FOR UPDATE'),
  );
  const lockCalls = lock.reduce((n, r) => n + r.calls, 0);
  const lockMs = lock.reduce((ms, r) => ms + r.mean_ms * r.calls, 0) / lockCalls;
  const all = (_: string) => true;
  return [
    {
      // Each a round trip between a pkm server and PostgreSQL.
      part: 'statements_per_allocation',
      value: round(calls(all) / allocations, 1),
      unit: 'statements',
    },
    {
      part: 'db_ms_per_allocation',
      value: round(rows.reduce((ms, r) => ms + r.total_ms, 0) / allocations, 2),
      unit: 'ms',
    },
    { part: 'commits', value: calls((q) => q === 'COMMIT'), unit: 'transactions' },
    { part: 'store_conflicts', value: calls((q) => q === 'ROLLBACK'), unit: 'transactions' },
    {
      // Each run of an allocation reads the pool twice (cooling and free keys).
      part: 'request_runs_per_allocation',
      value: round(calls((q) => q === oldest) / 2 / allocations, 2),
      unit: 'runs',
    },
    { part: 'counters_lock_ms', value: round(lockMs, 2), unit: 'ms' },
  ];
}

export interface ProfileTarget {
  /** Figure names start with this (allocate_pg1, …). */
  readonly prefix: string;
  readonly serverPids: readonly number[];
  /** The database the servers use, when they use PostgreSQL. */
  readonly pg?: { readonly cluster: PgServer; readonly database: string };
}

export interface Profile {
  /** Stops, and gives the figures of a run that made `allocations` in `seconds`. */
  finish(allocations: number, seconds: number): Promise<Figure[]>;
  /** Stops, for a run that failed. */
  abort(): Promise<void>;
}

/** Starts profiling a run (after its warm-up). */
export async function startProfile(target: ProfileTarget): Promise<Profile> {
  const { pg: db } = target;
  const pgPids = db ? await withChildren(await postmasterPid(db.cluster)) : [];
  if (db) await withClient(db.cluster.url, (c) => c.query('SELECT pg_stat_statements_reset()'));
  const servers = await cpuOf(target.serverPids);
  const postgres = await cpuOf(pgPids);
  const machine = await machineBusySeconds();
  const self = process.cpuUsage();
  const activity = db ? sampleActivity(db.cluster.url, db.database) : undefined;
  const finish = async (allocations: number, seconds: number): Promise<Figure[]> => {
    // The CPU first, as near the run's end as can be.
    const loadGenerator = process.cpuUsage(self);
    const serversUsed = used(servers, await cpuOf(target.serverPids));
    const machineUsed = (await machineBusySeconds()) - machine;
    const pgUsed = db
      ? used(postgres, await cpuOf(await withChildren(await postmasterPid(db.cluster))))
      : 0;
    const waits = await activity?.();
    const cores = (s: number) => round(s / seconds, 2);
    const name = (part: string) => `${target.prefix}.${part}`;
    const figures: Figure[] = [
      { name: name('cpu.servers'), value: cores(serversUsed), unit: 'cores' },
      {
        name: name('cpu.load_generator'),
        value: cores((loadGenerator.user + loadGenerator.system) / 1e6),
        unit: 'cores',
      },
      { name: name('cpu.machine'), value: cores(machineUsed), unit: 'cores' },
    ];
    if (db) {
      figures.push({ name: name('cpu.postgres'), value: cores(pgUsed), unit: 'cores' });
      for (const w of WAITS)
        figures.push({
          name: name(`sessions.${w}`),
          value: round(waits?.[w] ?? 0, 2),
          unit: 'sessions',
        });
      for (const { part, ...f } of await statementFigures(db.cluster.url, db.database, allocations))
        figures.push({ name: name(part), ...f });
    }
    return figures;
  };
  return {
    finish,
    abort: async () => {
      await activity?.();
    },
  };
}

export function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
