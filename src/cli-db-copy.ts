// `pkm db copy` (issue 15, point 6): a stopped server's whole store into an empty one, LevelDB or
// PostgreSQL on either side. Each side takes `pkm server`'s store flags, prefixed --from-/--to-,
// parsed and read by the server's own code (store-config.ts, store-setup.ts).
import type { Command } from 'commander';
import { type RawFlags, text } from './config.js';
import { ExitCode, PkmError } from './errors.js';
import type { ServerConfig } from './server/config.js';
import { describeStore, parseStoreConfig } from './server/store-config.js';
import { openStore, prepareStoreOpen } from './server/store-setup.js';
import { flag } from './server-options.js';
import { isEmptyDir } from './store/backup.js';
import { checkStore } from './store/check.js';
import { copyStore, finishCopy, requireEmptyTarget, verifyCopy } from './store/copy.js';
import { loadKek } from './store/encryption.js';

type Side = 'from' | 'to';
type SideConfig = Pick<ServerConfig, 'store' | 'kekFile'>;

/** `pkm server`'s flags that each side takes, as --from-… and --to-…. */
const PER_SIDE = ['storePasswordFile', 'storeSslMode', 'storeCaFile'] as const;

/** One side's flags as `pkm server`'s, checked by its parser; a refusal says which side. */
function sideConfig(raw: RawFlags, side: Side, kekFile: string): SideConfig {
  const value = text(raw, side);
  if (value === undefined)
    throw new PkmError(
      'INVALID_CONFIG',
      `--${side} is required: a LevelDB folder or a postgres:// URL, e.g. --${side} ./data`,
    );
  // A scheme makes it a URL (refused by the parser unless postgres://); anything else a folder.
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  const own: Record<string, unknown> = isUrl ? { store: value } : { dataDir: value };
  for (const name of PER_SIDE) own[name] = raw[`${side}S${name.slice(1)}`];
  try {
    return { store: parseStoreConfig({ ...own, kekFile }), kekFile };
  } catch (err) {
    if (!(err instanceof PkmError)) throw err;
    throw new PkmError(
      err.code,
      `--${side} (whose --store-… flags are --${side}-store-…): ${err.message}`,
    );
  }
}

export function addDbCopyCommand(db: Command): void {
  const cmd = db
    .command('copy')
    .description(
      'copy a whole store into an empty one, between LevelDB and PostgreSQL (no server may run on either side)',
    )
    .addOption(flag('--from <dir|url>', 'the store copied: a LevelDB folder or postgres://…'))
    .addOption(flag('--to <dir|url>', 'an empty LevelDB folder (or absent) or empty database'))
    .addOption(
      flag('--kek-file <file>', "the source's KEK; the copy opens with it too (required)"),
    );
  for (const side of ['from', 'to'] as const) {
    cmd
      .addOption(flag(`--${side}-store-password-file <file>`, `--${side}'s database password`))
      .addOption(
        flag(`--${side}-store-ssl-mode <mode>`, `--${side}'s TLS: disable|require|verify-full`),
      )
      .addOption(flag(`--${side}-store-ca-file <file>`, `--${side}'s CA, for verify-full`));
  }
  cmd.addHelpText(
    'after',
    `
Stop every server on both sides first: a LevelDB side is locked while copying, a database is
not. The target must be empty (no key, pod, audit event or store meta): a copy never merges.
Records are copied sealed, with the wrapped data key, so the same KEK opens the copy: start
the server on it with the same --kek-file. The copy is checked (pkm db check, and every
secret opens to the same key) before this prints its summary.
A copy that died midway leaves a target that is not empty, which a new copy refuses: remove
the folder, or drop and create the database, then copy again.`,
  );
  cmd.action(async (raw: RawFlags) => {
    const kekFile = text(raw, 'kekFile');
    if (kekFile === undefined)
      throw new PkmError(
        'INVALID_CONFIG',
        '--kek-file is required: the KEK that opens the source (e.g. --kek-file ./data/kek)',
      );
    const from = sideConfig(raw, 'from', kekFile);
    const to = sideConfig(raw, 'to', kekFile);
    const [fromWhere, toWhere] = [describeStore(from.store), describeStore(to.store)];
    if (fromWhere === toWhere)
      throw new PkmError('INVALID_CONFIG', '--from and --to name the same store');
    // Every file is read, and every refusal made, before either store is opened.
    const fromOpening = await prepareStoreOpen(from);
    const toOpening = await prepareStoreOpen(to);
    const { kek } = await loadKek('', kekFile);
    if (toOpening.kind === 'leveldb' && !(await isEmptyDir(toOpening.dataDir)))
      throw new PkmError(
        'RESTORE_TARGET_NOT_EMPTY',
        `--to ${toOpening.dataDir} is not empty: copy into a new folder (nothing was changed)`,
      );
    // The source opens with the KEK first: a wrong KEK is refused before the target is touched.
    const source = await openStore(fromOpening, kek);
    try {
      // Without its KEK, an empty target makes no data key of its own: the source's is copied.
      const target = await openStore(toOpening, undefined);
      let result: Awaited<ReturnType<typeof copyStore>>;
      try {
        await requireEmptyTarget(target, toWhere);
        result = await copyStore(source, target);
      } finally {
        await target.close();
      }
      const copy = await openStore(toOpening, kek);
      try {
        await verifyCopy(source, copy);
        const { problems } = await checkStore(copy);
        // Only a complete, checked copy may be served: until now a server refuses it.
        if (problems.length === 0) await finishCopy(copy);
        process.stdout.write(
          `${JSON.stringify({ ...result, from: fromWhere, to: toWhere, problems })}\n`,
        );
        if (problems.length > 0) process.exitCode = ExitCode.store;
      } finally {
        await copy.close();
      }
    } finally {
      await source.close();
    }
  });
}
