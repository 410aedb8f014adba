// A real PostgreSQL 15 for tests (issue 15, point 5): a throwaway cluster in a temp dir, on a
// free loopback port, started by the test and stopped by it, so no test needs a server it did
// not start. Debian keeps initdb and pg_ctl off PATH, and initdb refuses to run as root: as
// root, the cluster belongs to the `postgres` user and every command runs as that user.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

const run = promisify(execFile);

export interface PgBinaries {
  readonly initdb: string;
  readonly pgCtl: string;
}

export interface PgServer {
  /** postgres://pkm@127.0.0.1:PORT/postgres (trust auth: no password). */
  readonly url: string;
  readonly port: number;
  /** Stops the server (fast shutdown) and removes its files; safe to call twice. */
  stop(): Promise<void>;
}

/** Where initdb and pg_ctl are: PATH first, then Debian's versioned dir (15 preferred). */
export async function findPostgres(): Promise<PgBinaries | undefined> {
  const onPath = await run('sh', ['-c', 'command -v initdb && command -v pg_ctl']).catch(
    () => undefined,
  );
  const [initdb, pgCtl] = onPath?.stdout.trim().split('\n') ?? [];
  if (initdb && pgCtl) return { initdb, pgCtl };
  const listed = await run('dpkg', ['-L', 'postgresql-15']).catch(() => undefined);
  const fromDpkg = listed?.stdout.split('\n').find((l) => l.endsWith('/bin/initdb'));
  const dirs = fromDpkg ? [fromDpkg.slice(0, -'/initdb'.length)] : await debianBinDirs();
  for (const dir of dirs) {
    const bins = { initdb: join(dir, 'initdb'), pgCtl: join(dir, 'pg_ctl') };
    if (existsSync(bins.initdb) && existsSync(bins.pgCtl)) return bins;
  }
  return undefined;
}

async function debianBinDirs(): Promise<string[]> {
  const versions = await readdir('/usr/lib/postgresql').catch(() => []);
  // Newest first, so a machine with only another major still finds one.
  return versions
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join('/usr/lib/postgresql', v, 'bin'));
}

/** As root, a command runs as `postgres` (initdb refuses root); otherwise as this user. */
function asOwner(argv: readonly string[]): [string, string[]] {
  const [cmd = '', ...args] = argv;
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', ...argv]] : [cmd, args];
}

async function runAsOwner(argv: readonly string[], timeoutMs: number): Promise<string> {
  const [cmd, args] = asOwner(argv);
  const { stdout } = await run(cmd, args, { timeout: timeoutMs });
  return stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Every cluster this process started and has not stopped: stopped if the process exits. */
const running = new Map<string, PgBinaries>();
process.once('exit', () => {
  // A worker that ends without its afterAll (a timeout, a crash) leaves no postgres behind.
  for (const [data, bins] of running) {
    const [cmd, args] = asOwner([bins.pgCtl, '-D', data, 'stop', '-m', 'immediate', '-w']);
    spawnSync(cmd, args, { timeout: 10_000, stdio: 'ignore' });
  }
});

/**
 * Makes and starts a cluster: initdb (trust auth, superuser `pkm`), then pg_ctl on a free
 * 127.0.0.1 port with fsync and synchronous_commit on (the store's durability rests on them),
 * and waits until it takes connections.
 */
export async function startPostgres(bins: PgBinaries, timeoutMs = 60_000): Promise<PgServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-pg-'));
  const data = join(dir, 'data');
  let started = false;
  const stop = async (): Promise<void> => {
    if (started) {
      started = false;
      await runAsOwner([bins.pgCtl, '-D', data, 'stop', '-m', 'fast', '-w'], timeoutMs).catch(
        () => undefined,
      );
      running.delete(data);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if (process.getuid?.() === 0) await run('chown', ['postgres:postgres', dir]);
    await runAsOwner(
      [bins.initdb, '-D', data, '-A', 'trust', '-U', 'pkm', '-E', 'UTF8'],
      timeoutMs,
    );
    const port = await freePort();
    const options = [
      `-k ${dir}`,
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=on',
      '-c synchronous_commit=on',
    ].join(' ');
    started = true;
    running.set(data, bins);
    const log = join(dir, 'server.log');
    await runAsOwner(
      [bins.pgCtl, '-D', data, '-l', log, '-o', options, '-w', '-t', '30', 'start'],
      timeoutMs,
    ).catch(async (err: unknown) => {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed: ${String(err)}\n${text}`);
    });
    const url = `postgres://pkm@127.0.0.1:${port}/postgres`;
    await untilConnects(url, timeoutMs);
    return { url, port, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** pg_ctl -w waits for the socket; this waits until a TCP client gets a query through. */
async function untilConnects(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * One cluster for a test file: started before its tests, stopped after them, failed or not.
 * The getter throws if called before it started (outside a test).
 */
export function usePostgres(bins: PgBinaries): () => PgServer {
  let server: PgServer | undefined;
  beforeAll(async () => {
    server = await startPostgres(bins);
  }, 90_000);
  afterAll(async () => {
    await server?.stop();
  }, 60_000);
  return () => {
    if (!server) throw new Error('PostgreSQL is not started');
    return server;
  };
}
