// `pkm db …`: maintenance of a stopped server's store (the commands take its lock).
import type { Command } from 'commander';
import { GroupCommitter } from './allocation/group-commit.js';
import { rotateKek } from './allocation/kek-rotation.js';
import { fenceRestored } from './allocation/restore.js';
import { addDbCopyCommand } from './cli-db-copy.js';
import { parseInteger, type RawFlags } from './config.js';
import { ExitCode, PkmError } from './errors.js';
import { createStderrLogger } from './log.js';
import { flag } from './server-options.js';
import { backupStore, RESTORE_CAVEATS, restoreStore } from './store/backup.js';
import { checkStore } from './store/check.js';
import { kekLoader, loadKek } from './store/encryption.js';
import { Store } from './store/store.js';

export function addDbCommands(program: Command): void {
  const db = program.command('db').description("maintenance of a stopped server's store");
  db.command('check')
    .description(
      "check the store's invariants (no key in two places, none lost, pods and keys agree)",
    )
    .addOption(flag('--data-dir <dir>', 'LevelDB directory', './data'))
    .action(async (opts: RawFlags) => {
      const store = await Store.open(String(opts.dataDir));
      try {
        const report = await checkStore(store);
        process.stdout.write(
          `${JSON.stringify({ keys: report.keys, pods: report.pods, problems: report.problems })}\n`,
        );
        if (report.problems.length > 0) process.exitCode = ExitCode.store;
      } finally {
        await store.close();
      }
    });

  db.command('backup')
    .description("a consistent copy of a stopped server's store (secrets stay sealed)")
    .addOption(flag('--data-dir <dir>', 'LevelDB directory', './data'))
    .addOption(flag('--out <file>', 'the backup file (0600)'))
    .action(async (opts: RawFlags) => {
      if (opts.out === undefined)
        throw new PkmError('INVALID_CONFIG', '--out is required, e.g. --out pkm-backup.jsonl');
      const result = await backupStore(String(opts.dataDir), String(opts.out));
      process.stdout.write(`${JSON.stringify({ ...result, out: opts.out })}\n`);
    });

  db.command('restore')
    .description('restore a backup into an empty --data-dir (checked before it is put in place)')
    .addOption(flag('--data-dir <dir>', 'LevelDB directory (must be empty or absent)', './data'))
    .addOption(flag('--from <file>', 'a file pkm db backup wrote'))
    .action(async (opts: RawFlags) => {
      if (opts.from === undefined)
        throw new PkmError('INVALID_CONFIG', '--from is required, e.g. --from pkm-backup.jsonl');
      const result = await restoreStore(String(opts.dataDir), String(opts.from), (store) =>
        fenceRestored(store, Date.now()),
      );
      process.stderr.write(
        [
          `pkm: restored. ${result.fenced} free or cooling keys are fenced, and the next start holds every move and every derivation for a full --reuse-delay while pods re-assert what they run. The same KEK as at backup time opens the store.`,
          'pkm: what this backup cannot know:',
          ...RESTORE_CAVEATS.map((c) => `pkm:   - ${c}`),
          '',
        ].join('\n'),
      );
      process.stdout.write(`${JSON.stringify({ ...result, dataDir: opts.dataDir })}\n`);
    });

  db.command('rotate-kek')
    .description('re-encrypt every secret under a new KEK (resumes an unfinished rotation)')
    .addOption(flag('--data-dir <dir>', 'LevelDB directory', './data'))
    .addOption(flag('--kek-file <file>', 'the current KEK (default: <data-dir>/kek)'))
    .addOption(flag('--new-kek-file <file>', 'the new KEK: 32 bytes as hex or base64'))
    .addOption(flag('--batch-size <n>', 'records re-encrypted per atomic batch', '500'))
    .action(async (opts: RawFlags) => {
      if (opts.newKekFile === undefined)
        throw new PkmError(
          'INVALID_CONFIG',
          '--new-kek-file is required, e.g. --new-kek-file /etc/pkm/kek-2',
        );
      const dataDir = String(opts.dataDir);
      const kekFile = opts.kekFile === undefined ? undefined : String(opts.kekFile);
      const batch = parseInteger(String(opts.batchSize), 'batch-size', 1, 100_000, '500');
      const newKek = (await loadKek(dataDir, String(opts.newKekFile))).kek;
      const store = await Store.open(dataDir, {
        kek: kekLoader(dataDir, kekFile),
        extraKeks: [newKek],
      });
      const log = createStderrLogger('info');
      try {
        const group = GroupCommitter.of(store);
        const result = await rotateKek(store, group, newKek, {
          batch,
          onBegin: (from, target) => log.info({ from, target }, 'KEK rotation begun'),
          onProgress: (done, total) => log.info({ done, total }, 'migrated'),
        });
        log.flush();
        process.stdout.write(`${JSON.stringify({ ...result, kekFile: opts.newKekFile })}\n`);
      } finally {
        await store.close();
      }
    });

  addDbCopyCommand(db);
}
