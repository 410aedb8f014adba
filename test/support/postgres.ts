// A real PostgreSQL 15 for tests (issue 15, point 5): a throwaway cluster in a temp dir, on a
// free loopback port, started by the test and stopped by it, so no test needs a server it did
// not start. Debian keeps initdb and pg_ctl off PATH, and initdb refuses to run as root: as
// root, the cluster belongs to the `postgres` user and every command runs as that user.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
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
  /** postgres://pkm@127.0.0.1:PORT/postgres (no password in it, whatever the auth). */
  readonly url: string;
  readonly port: number;
  /** The cluster's files (PGDATA), for a test that scans what reached the disk. */
  readonly dataDir: string;
  /**
   * How to connect as the superuser `pkm` over the cluster's Unix socket, which stays trust
   * whatever TCP asks (a password, TLS): for tests that set up databases and read tables.
   */
  admin(database?: string): pg.ClientConfig;
  /** Stops the server (fast shutdown) and removes its files; safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stops the server, keeping its data dir and port: `fast` ends sessions and checkpoints;
   * `immediate` is a crash (no checkpoint: the next start replays the WAL).
   */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts a stopped server again on the same data dir and port, and waits until it answers. */
  startServer(): Promise<void>;
  /** stopServer('fast') then startServer(): every connection is lost, the data stays. */
  restart(): Promise<void>;
}

/** What the cluster asks of TCP clients (the socket stays trust). */
export interface PgOptions {
  readonly timeoutMs?: number;
  /** scram-sha-256 for every TCP client, and this password set for `pkm`. */
  readonly password?: string;
  /**
   * ssl=on with this PEM certificate and key; with `only`, a TCP client without TLS is
   * refused (hostnossl reject), so a connection that works is known to be encrypted.
   */
  readonly tls?: { readonly cert: string; readonly key: string; readonly only?: boolean };
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

/** pg_hba.conf: the socket trusts (the harness's own admin door), TCP as `opts` asks. */
function hbaOf(opts: PgOptions): string {
  const method = opts.password === undefined ? 'trust' : 'scram-sha-256';
  const tcp = opts.tls?.only
    ? [`hostssl all all 127.0.0.1/32 ${method}`, 'hostnossl all all 127.0.0.1/32 reject']
    : [`host all all 127.0.0.1/32 ${method}`];
  return ['local all all trust', ...tcp, ''].join('\n');
}

/**
 * Makes and starts a cluster: initdb (superuser `pkm`), then pg_ctl on a free 127.0.0.1 port
 * with fsync and synchronous_commit on (the store's durability rests on them), and waits until
 * it takes connections. TCP is trust unless `opts` asks for a password or TLS.
 */
export async function startPostgres(bins: PgBinaries, opts: PgOptions = {}): Promise<PgServer> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const dir = await mkdtemp(join(tmpdir(), 'pkm-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  let port = 0;
  let started = false;
  /** Once `pkm` has its password: TCP is checked too, as a test will use it. */
  let tcpReady = false;
  const admin = (database = 'postgres'): pg.ClientConfig => ({
    host: dir,
    port,
    user: 'pkm',
    database,
  });
  const tcp = (): pg.ClientConfig => ({
    host: '127.0.0.1',
    port,
    user: 'pkm',
    database: 'postgres',
    ...(opts.password === undefined ? {} : { password: opts.password }),
    // Only whether it answers: the tests check the certificate themselves.
    ssl: opts.tls === undefined ? false : { rejectUnauthorized: false },
  });
  const stopServer = async (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    if (!started) return;
    started = false;
    await runAsOwner([bins.pgCtl, '-D', data, 'stop', '-m', mode, '-w'], timeoutMs).catch(
      () => undefined,
    );
    running.delete(data);
  };
  const startServer = async (): Promise<void> => {
    if (started) return;
    const options = [
      `-k ${dir}`,
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=on',
      '-c synchronous_commit=on',
      ...(opts.tls === undefined
        ? []
        : ['-c ssl=on', `-c ssl_cert_file=${dir}/server.crt`, `-c ssl_key_file=${dir}/server.key`]),
    ].join(' ');
    started = true;
    running.set(data, bins);
    await runAsOwner(
      [bins.pgCtl, '-D', data, '-l', log, '-o', options, '-w', '-t', '30', 'start'],
      timeoutMs,
    ).catch(async (err: unknown) => {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed: ${String(err)}\n${text}`);
    });
    // pg_ctl -w waits for the socket; these wait until a client gets a query through.
    await untilConnects(admin(), timeoutMs);
    if (tcpReady) await untilConnects(tcp(), timeoutMs);
  };
  const stop = async (): Promise<void> => {
    await stopServer('fast');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await run('chown', ['postgres:postgres', dir]);
    await runAsOwner(
      [bins.initdb, '-D', data, '-A', 'trust', '-U', 'pkm', '-E', 'UTF8'],
      timeoutMs,
    );
    await writeFile(join(data, 'pg_hba.conf'), hbaOf(opts));
    if (opts.tls !== undefined) {
      // PostgreSQL refuses a key that others may read, and reads both as its own user.
      await copyFile(opts.tls.cert, join(dir, 'server.crt'));
      await copyFile(opts.tls.key, join(dir, 'server.key'));
      await chmod(join(dir, 'server.key'), 0o600);
      if (asRoot)
        await run('chown', [
          'postgres:postgres',
          join(data, 'pg_hba.conf'),
          join(dir, 'server.crt'),
          join(dir, 'server.key'),
        ]);
    } else if (asRoot) await run('chown', ['postgres:postgres', join(data, 'pg_hba.conf')]);
    port = await freePort();
    await startServer();
    if (opts.password !== undefined) {
      const client = new pg.Client(admin());
      await client.connect();
      try {
        // scram-sha-256 is PostgreSQL 15's password_encryption: the verifier, not the password.
        await client.query(`ALTER USER pkm PASSWORD ${client.escapeLiteral(opts.password)}`);
      } finally {
        await client.end();
      }
    }
    tcpReady = true;
    await untilConnects(tcp(), timeoutMs);
    const url = `postgres://pkm@127.0.0.1:${port}/postgres`;
    const restart = async (): Promise<void> => {
      await stopServer('fast');
      await startServer();
    };
    return { url, port, dataDir: data, admin, stop, stopServer, startServer, restart };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Retries a connection and a query until they work, or the time is up. */
async function untilConnects(config: pg.ClientConfig, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client(config);
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
export function usePostgres(bins: PgBinaries, opts: PgOptions = {}): () => PgServer {
  let server: PgServer | undefined;
  beforeAll(async () => {
    server = await startPostgres(bins, opts);
  }, 90_000);
  afterAll(async () => {
    await server?.stop();
  }, 60_000);
  return () => {
    if (!server) throw new Error('PostgreSQL is not started');
    return server;
  };
}
