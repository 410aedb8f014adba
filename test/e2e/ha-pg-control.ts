// Stopping and starting a test's PostgreSQL cluster (test/support/postgres.ts) on the same
// data dir and port while servers use it: a restart, or a crash, of the database.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PgBinaries, PgServer } from '../support/postgres.js';

const run = promisify(execFile);

/**
 * Stops and starts the cluster on its data dir and port, as test/support/postgres.ts started
 * it. TODO(issue 15): use PgServer.stopServer() and startServer() once the harness has them
 * (branch wip-pg-cli), and drop this.
 */
export async function pgControls(cluster: PgServer, pgBins: PgBinaries) {
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  const data = String((await admin.query('SHOW data_directory')).rows[0]?.data_directory);
  await admin.end();
  const dir = dirname(data);
  const asOwner = (argv: string[]): [string, string[]] =>
    process.getuid?.() === 0
      ? ['runuser', ['-u', 'postgres', '--', ...argv]]
      : [argv[0] ?? '', argv.slice(1)];
  const pgCtl = async (...args: string[]) => {
    const [cmd, argv] = asOwner([pgBins.pgCtl, '-D', data, ...args]);
    await run(cmd, argv, { timeout: 60_000 });
  };
  const options = [
    `-k ${dir}`,
    `-p ${cluster.port}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=on',
    '-c synchronous_commit=on',
  ].join(' ');
  return {
    /** fast: sessions ended, a checkpoint; immediate: a crash, the WAL replayed at start. */
    stopServer: (mode: 'fast' | 'immediate') => pgCtl('stop', '-m', mode, '-w'),
    // -l: the server's output to its log, not to a pipe this process would wait on.
    startServer: () =>
      pgCtl('start', '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '30'),
  };
}
