// The real server with unsynced commits: for bench/allocate, to measure what syncing costs,
// and for test/e2e/sync.test.ts, to show that its check catches a server that does not sync.
// Takes `pkm server`'s flags. `pkm server` itself never runs unsynced (DESIGN.md, "Store").
import { Command } from 'commander';
import { parseServerConfig, type RawFlags } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startServer } from '../src/server/serve.js';
import { serverOptions } from '../src/server-flags.js';

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
