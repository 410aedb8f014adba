// `pkm db …`: maintenance of a store. On LevelDB each command takes the data dir's lock, so a
// running server's is refused; on PostgreSQL (--store) a command that writes holds the
// database's presence lock (store/pg/presence.ts), so it is refused while any server runs,
// and `pkm db check` reads one snapshot beside running servers. Backups are LevelDB's own
// format: a database is backed up with pg_dump, or copied to a folder first (pkm db copy).
import type { Command } from 'commander';
import { GroupCommitter } from './allocation/group-commit.js';
import { rotateKek } from './allocation/kek-rotation.js';
import { fenceRestored } from './allocation/restore.js';
import { addDbCopyCommand } from './cli-db-copy.js';
import {
  addStoreOptions,
  prepareCommandStore,
  readConsistently,
  refuseStore,
  type StoreNeeds,
} from './cli-store.js';
import { parseInteger, type RawFlags } from './config.js';
import { ExitCode, PkmError } from './errors.js';
import { createStderrLogger } from './log.js';
import { flag } from './server-options.js';
import { backupStore, RESTORE_CAVEATS, restoreStore } from './store/backup.js';
import { checkStore } from './store/check.js';
import { loadKek } from './store/encryption.js';

/** What a LevelDB backup is on PostgreSQL (README, "Backups"). */
const BACKUP_INSTEAD =
  'back the database up with pg_dump (a consistent snapshot, servers may run), or stop every server, pkm db copy --from postgres://… --to ./copy, then pkm db backup --data-dir ./copy';
const RESTORE_INSTEAD =
  'restore into a folder (pkm db restore --data-dir ./restored --from FILE), then pkm db copy --from ./restored --to postgres://… (an empty database): the copy keeps the fences and the hold of the restore';

export function addDbCommands(program: Command): void {
  const db = program
    .command('db')
    .description('maintenance of a store: a LevelDB --data-dir, or PostgreSQL with --store');
  const checking: StoreNeeds = { kek: false, access: 'read' };
  addStoreOptions(
    db
      .command('check')
      .description(
        "check the store's invariants (no key in two places, none lost, pods and keys agree); on PostgreSQL, one snapshot while servers may run",
      ),
    checking,
  ).action(async (opts: RawFlags) => {
    const open = await prepareCommandStore(opts, checking);
    const store = await open();
    try {
      const report = await readConsistently(store, checkStore);
      process.stdout.write(
        `${JSON.stringify({ keys: report.keys, pods: report.pods, problems: report.problems })}\n`,
      );
      if (report.problems.length > 0) process.exitCode = ExitCode.store;
    } finally {
      await store.close();
    }
  });

  db.command('backup')
    .description("a consistent copy of a stopped server's LevelDB store (secrets stay sealed)")
    .addOption(flag('--data-dir <dir>', 'LevelDB directory', './data'))
    .addOption(flag('--out <file>', 'the backup file (0600)'))
    .addOption(flag('--store <url>', 'refused: a database is backed up with pg_dump (see README)'))
    .action(async (opts: RawFlags) => {
      refuseStore(opts, 'pkm db backup', BACKUP_INSTEAD);
      if (opts.out === undefined)
        throw new PkmError('INVALID_CONFIG', '--out is required, e.g. --out pkm-backup.jsonl');
      const result = await backupStore(String(opts.dataDir), String(opts.out));
      process.stdout.write(`${JSON.stringify({ ...result, out: opts.out })}\n`);
    });

  db.command('restore')
    .description('restore a backup into an empty --data-dir (checked before it is put in place)')
    .addOption(flag('--data-dir <dir>', 'LevelDB directory (must be empty or absent)', './data'))
    .addOption(flag('--from <file>', 'a file pkm db backup wrote'))
    .addOption(
      flag('--store <url>', 'refused: restore into a folder, then pkm db copy (see README)'),
    )
    .action(async (opts: RawFlags) => {
      refuseStore(opts, 'pkm db restore', RESTORE_INSTEAD);
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

  const rotating: StoreNeeds = { kek: true, access: 'alone' };
  addStoreOptions(
    db
      .command('rotate-kek')
      .description(
        're-encrypt every secret under a new KEK (resumes an unfinished rotation); every server stopped, on LevelDB and PostgreSQL alike',
      ),
    rotating,
  )
    .addOption(flag('--new-kek-file <file>', 'the new KEK: 32 bytes as hex or base64'))
    .addOption(flag('--batch-size <n>', 'records re-encrypted per atomic batch', '500'))
    .action(async (opts: RawFlags) => {
      if (opts.newKekFile === undefined)
        throw new PkmError(
          'INVALID_CONFIG',
          '--new-kek-file is required, e.g. --new-kek-file /etc/pkm/kek-2',
        );
      const batch = parseInteger(String(opts.batchSize), 'batch-size', 1, 100_000, '500');
      const open = await prepareCommandStore(opts, rotating);
      const newKek = (await loadKek('', String(opts.newKekFile))).kek;
      // Both KEKs: an unfinished rotation resumes whichever one the store's data key is under.
      const store = await open([newKek]);
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
