// `pkm keys import`: keystores (and their EIP-3076 history) into a stopped server's store, a
// LevelDB --data-dir or a PostgreSQL --store. It takes the data dir's lock, or the database's
// presence lock (store/pg/presence.ts), so a store any server runs on is refused
// (STORE_LOCKED); a running server imports through POST /v1/admin/keys/import instead.

import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { GroupCommitter } from './allocation/group-commit.js';
import { DEFAULT_CHUNK, importKeys, largestKdf } from './allocation/import-keys.js';
import { parseInterchange } from './api/interchange.js';
import { addStoreOptions, prepareCommandStore, type StoreNeeds } from './cli-store.js';
import { parseInteger, type RawFlags, text } from './config.js';
import { ExitCode, messageOf, PkmError } from './errors.js';
import { readImportSources } from './import-sources.js';
import { KdfPool, poolSize } from './keys/kdf-pool.js';
import { parseChain } from './server/config.js';
import { flag } from './server-options.js';

/** Progress on stderr at least this often. */
const PROGRESS_MS = 2000;

const HELP = `
Sources (--keystores, one or more):
  FILE                       one EIP-2335 keystore (scrypt or pbkdf2)
  DIR written by pkm client  lighthouse, nimbus, lodestar, teku or prysm layout: every keystore
                             in it, with the layout's own password files (secrets/0x<pk>,
                             passwords/0x<pk>.txt, wallet-password.txt)
  any other DIR              every keystore*.json in it (staking-deposit-cli's validator_keys)
Passwords, first that applies:
  --password-file F          one password for every keystore
  --passwords-dir D          D/<keystore file name without .json>.txt for each keystore
  the layout's own password files
Imported keys are fenced (they may still run elsewhere): nobody gets them before --reuse-delay
and the liveness gate; --never-validated keys are free at once. Re-running is safe: keys the
store holds are skipped. One JSON line on stdout: {imported, skipped, failed:[{file, code,
message}], protected, protectionIgnored}; progress on stderr.
Exit codes: 0 all imported or skipped; 3 some keystores were refused (the others were imported);
2, 5 as for every command (bad flags; the store locked or damaged), and nothing was imported.
PKM_IMPORT_CHUNK_SIZE (for tests): keys per atomic batch, default ${DEFAULT_CHUNK}.`;

const IMPORTING: StoreNeeds = { kek: true, access: 'alone' };

export function addKeysImportCommand(keys: Command): void {
  addStoreOptions(
    keys
      .command('import')
      .description(
        "import EIP-2335 keystores (and their slashing protection) into a stopped server's store",
      ),
    IMPORTING,
  )
    .option('--keystores <paths...>', 'keystore files and folders (see below)')
    .addOption(flag('--password-file <file>', 'one password for every keystore'))
    .addOption(flag('--passwords-dir <dir>', 'a <keystore name without .json>.txt per keystore'))
    .addOption(
      flag(
        '--slashing-protection <file>',
        'EIP-3076 interchange (v5) of these keys, merged into each',
      ),
    )
    .addOption(flag('--never-validated', 'the keys never ran anywhere: free at once, not fenced'))
    .addOption(
      flag('--network <name>', 'mainnet|hoodi|sepolia|holesky|custom, as pkm server takes it'),
    )
    .addOption(
      flag(
        '--genesis-validators-root <hex>',
        "the chain's genesis_validators_root, as pkm server takes it",
      ),
    )
    .addOption(flag('--fork-version <hex>', 'genesis fork version, with --network custom'))
    .addOption(flag('--chain-id <n>', 'chain id, with --network custom'))
    .addOption(flag('--deposit-contract <address>', "deposit contract (default: the network's)"))
    .addHelpText('after', HELP)
    .action(async (opts: RawFlags) => {
      const paths = Array.isArray(opts.keystores) ? opts.keystores.map(String) : [];
      if (paths.length === 0)
        throw new PkmError(
          'INVALID_CONFIG',
          '--keystores is required, e.g. --keystores ./validator_keys',
        );
      const { genesisValidatorsRoot } = parseChain(opts);
      // The store's flags and files are checked before any keystore is read.
      const open = await prepareCommandStore(opts, IMPORTING);
      const chunk = parseInteger(
        process.env.PKM_IMPORT_CHUNK_SIZE ?? String(DEFAULT_CHUNK),
        'PKM_IMPORT_CHUNK_SIZE',
        1,
        10_000,
        '100',
      );
      const interchangeFile = text(opts, 'slashingProtection');
      const interchange =
        interchangeFile === undefined
          ? undefined
          : parseInterchange(await readJson(interchangeFile));
      const { sources, failed } = await readImportSources(paths, {
        passwordFile: text(opts, 'passwordFile'),
        passwordsDir: text(opts, 'passwordsDir'),
      });
      const store = await open();
      const pool = new KdfPool(poolSize(largestKdf(sources)));
      const progress = { decrypted: 0, imported: 0, total: sources.length };
      const started = Date.now();
      const report = () => {
        const seconds = Math.max(0.001, (Date.now() - started) / 1000);
        process.stderr.write(
          `pkm: ${progress.decrypted}/${progress.total} keystores decrypted, ${(progress.decrypted / seconds).toFixed(1)}/s, ${progress.imported} imported\n`,
        );
      };
      const timer = setInterval(report, PROGRESS_MS);
      try {
        const result = await importKeys(
          { store, group: GroupCommitter.of(store), clock: Date.now, genesisValidatorsRoot },
          pool,
          sources,
          {
            neverValidated: opts.neverValidated === true || opts.neverValidated === 'true',
            interchange,
            chunkSize: chunk,
            onProgress: (p) => Object.assign(progress, p),
          },
        );
        report();
        const refused = [...failed, ...result.failed].map(({ source, code, message }) => ({
          file: source,
          code,
          message,
        }));
        process.stdout.write(
          `${JSON.stringify({
            imported: result.imported,
            skipped: result.skipped,
            failed: refused,
            protected: result.protected,
            protectionIgnored: result.protectionIgnored,
          })}\n`,
        );
        if (refused.length > 0) process.exitCode = ExitCode.refused;
      } finally {
        clearInterval(timer);
        await pool.close();
        await store.close();
      }
    });
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new PkmError('INVALID_INTERCHANGE', `--slashing-protection ${file}: ${messageOf(err)}`);
  }
}
