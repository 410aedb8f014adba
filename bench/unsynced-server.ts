// The real server with unsynced commits: for bench/allocate, to measure what syncing costs,
// and for test/e2e/sync.test.ts, to show that its check catches a server that does not sync.
// Takes `pkm server`'s flags. `pkm server` itself never runs unsynced (DESIGN.md, "Store").
// It runs the built code (dist/, `npm run build`) that `pkm server` runs, so the two servers
// differ in the sync alone.
import { Command } from 'commander';
import type { RawFlags } from '../src/config.js';

type Config = typeof import('../src/server/config.js');
type Log = typeof import('../src/log.js');
type Serve = typeof import('../src/server/root.js');
type Flags = typeof import('../src/server-options.js');
const built = (path: string) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { parseServerConfig } = (await built('server/config.js')) as Config;
const { createLogger } = (await built('log.js')) as Log;
const { startServer } = (await built('server/root.js')) as Serve;
const { serverOptions } = (await built('server-options.js')) as Flags;

const command = new Command('unsynced-server');
for (const option of serverOptions()) command.addOption(option);
command.parse(process.argv);
const config = parseServerConfig(command.opts<RawFlags>());
const log = createLogger(config.logLevel);
const started = startServer(config, log, { unsyncedStore: true });
process.once('SIGTERM', () => {
  started
    .then((running) => running.close())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
});
await started;
