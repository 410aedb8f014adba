#!/usr/bin/env node
// `pkm`: every command, thin. Each parses its flags (and PKM_* env), then hands over to a module.
import { Command, CommanderError } from 'commander';
import { StoredState } from './api/key-state.js';
import { DEFAULT_NAMESPACE, parseNamespace, parsePodName } from './api/names.js';
import { pathTo, ROUTES } from './api/paths.js';
import { PUBKEY_ANY_CASE } from './api/pubkey.js';
import { AssignmentsAnswer } from './api/status.js';
import { addDbCommands } from './cli-db.js';
import { addKeysImportCommand } from './cli-import.js';
import {
  addStoreOptions,
  prepareCommandStore,
  readConsistently,
  type StoreNeeds,
} from './cli-store.js';
import { Agent } from './client/agent.js';
import { type ApiOptions, callServer, DEFAULT_TOKEN_FILE } from './client/api.js';
import { runClient } from './client/client.js';
import { parseClientConfig } from './client/config.js';
import { exportExits, parseIndices } from './client/exits.js';
import { parseKeymanagerConfig } from './client/keymanager-config.js';
import { keymanagerAgent } from './client/keymanager-setup.js';
import { requestMove, requestRebalance, waitForMoves } from './client/moves.js';
import { ignoredLines, releasePod } from './client/release.js';
import { statusText } from './client/status-text.js';
import { parseDuration, parseInteger, parseServerUrl, type RawFlags } from './config.js';
import { depositEntries } from './deposit/export.js';
import { ExitCode, PkmError, toPkmError } from './errors.js';
import { writePrivateFile } from './files.js';
import { createLogger, createStderrLogger, parseLogLevel } from './log.js';
import { flag, serverOptions } from './server-options.js';
import { VERSION } from './version.js';

/** --server, and how to reach it: the token to send and the CA its certificate chains to. */
function connectionOptions(command: Command): Command {
  return command
    .addOption(flag('--server <url>', 'server URL, e.g. https://pkm.pkm.svc:8443'))
    .addOption(
      flag(
        '--token-file <file>',
        `bearer token, read at each request (default: ${DEFAULT_TOKEN_FILE} when present)`,
      ),
    )
    .addOption(flag('--ca-file <file>', "PEM CA bundle for the server's certificate"));
}

/** --pod and --namespace, which default to what the downward API sets in a pod's env. */
function podOptions(command: Command): Command {
  return command
    .addOption(flag('--pod <name>', 'pod name (default: $POD_NAME)'))
    .addOption(
      flag('--namespace <name>', "the pod's namespace (default: $POD_NAMESPACE, else default)"),
    );
}

function connectionOf(opts: RawFlags): ApiOptions {
  return {
    server: parseServerUrl(opts.server),
    tokenFile: opts.tokenFile === undefined ? undefined : String(opts.tokenFile),
    caFile: opts.caFile === undefined ? undefined : String(opts.caFile),
  };
}

const program = new Command('pkm')
  .description('Hands Ethereum validator BLS keys to Kubernetes validator pods, slashing-safely.')
  .version(VERSION)
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

const server = program.command('server').description('run the key server');
for (const option of serverOptions()) server.addOption(option);
server.action(async (opts: RawFlags) => {
  // The server's modules (express, the store, the API) are loaded by this command only: the
  // others, `pkm client` in every pod's start first, start without them (issue 17).
  const { parseServerConfig } = await import('./server/config.js');
  const config = parseServerConfig(opts);
  const log = createLogger(config.logLevel);
  // Handlers go in as the server starts, not once it listens: a SIGTERM right after "listening"
  // (or during start-up) still drains and closes the store, instead of killing the process.
  const started = import('./server/root.js').then(({ startServer }) => startServer(config, log));
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    started
      .then((running) => running.close())
      .then(
        () => process.exit(ExitCode.ok),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(ExitCode.internal);
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await started;
});

podOptions(connectionOptions(program.command('client')))
  .description(
    "the validator pod's init container: fetch this pod's keys and write them as EIP-2335 keystores",
  )
  .addOption(flag('--count <n>', 'how many keys this pod runs'))
  .addOption(flag('--out <dir>', 'folder the validator client reads'))
  .addOption(flag('--layout <name>', 'lighthouse|teku|nimbus|lodestar|prysm', 'lighthouse'))
  .addOption(
    flag(
      '--kdf-profile <name>',
      'standard (EIP-2335 costs) | fast (pbkdf2 c=1: the password must sit beside the keystores in a memory-backed emptyDir; see README)',
      'standard',
    ),
  )
  .addOption(
    flag('--kdf <name>', 'scrypt|pbkdf2 (default: scrypt; pbkdf2 with --kdf-profile fast)'),
  )
  .addOption(
    flag(
      '--password-file <file>',
      'keystore password; made (0600) if missing (default: <out>/password.txt)',
    ),
  )
  .addOption(
    flag(
      '--timeout <duration>',
      'how long to keep retrying while the server is down or busy',
      '10m',
    ),
  )
  .addOption(
    flag('--concurrency <n>', 'keystores encrypted at once (scrypt: 256 MiB each; default: CPUs)'),
  )
  .addOption(flag('--shared-kdf', 'one KDF run for the whole batch (one salt; see README)'))
  .addOption(flag('--log-level <level>', 'logs go to stderr', 'info'))
  .action(async (opts: RawFlags) => {
    const config = parseClientConfig(opts);
    const summary = await runClient(config, createStderrLogger(config.logLevel));
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  });

podOptions(connectionOptions(program.command('agent')))
  .description(
    'sidecar: tell the server every --interval which keys this pod runs; with --keymanager-url, also keep the validator client’s keys equal to what the server assigns the pod (live moves)',
  )
  .addOption(
    flag(
      '--out <dir>',
      'the folder pkm client wrote (with --keymanager-url: the agent’s own, for its password)',
    ),
  )
  .addOption(flag('--layout <name>', 'lighthouse|teku|nimbus|lodestar|prysm', 'lighthouse'))
  .addOption(flag('--interval <duration>', 'time between heartbeats (and passes)', '30s'))
  .addOption(
    flag(
      '--keymanager-url <url>',
      "the validator client's Keymanager API, e.g. http://127.0.0.1:5062",
    ),
  )
  .addOption(flag('--keymanager-token-file <file>', "the validator client's API token file"))
  .addOption(flag('--keymanager-ca-file <file>', 'PEM CA bundle for an HTTPS Keymanager API'))
  .addOption(
    flag(
      '--remote-signer-url <url>',
      "keep the keys in this remote signer (Web3Signer's Keymanager API), registered with the VC as remote keys",
    ),
  )
  .addOption(
    flag(
      '--remote-signer-token-file <file>',
      "the remote signer's API token file, if it asks for one",
    ),
  )
  .addOption(flag('--remote-signer-ca-file <file>', 'PEM CA bundle for an HTTPS remote signer'))
  .addOption(
    flag(
      '--password-file <file>',
      'keystore password for imports; made (0600) if missing (default: <out>/password.txt)',
    ),
  )
  .addOption(flag('--kdf <name>', 'scrypt|pbkdf2, for the keystores it imports', 'scrypt'))
  .addOption(flag('--log-level <level>', 'logs go to stderr', 'info'))
  .action(async (opts: RawFlags) => {
    const client = parseClientConfig({ ...opts, count: '1' });
    const keymanager = parseKeymanagerConfig(opts);
    const log = createStderrLogger(client.logLevel);
    const intervalMs = parseDuration(String(opts.interval ?? '30s'), 'interval');
    const live = keymanager && keymanagerAgent(keymanager, client, log);
    const agent = new Agent(
      {
        server: client.server,
        tokenFile: client.tokenFile,
        caFile: client.caFile,
        pod: client.pod,
        namespace: client.namespace,
        out: client.out,
        layout: client.layout,
        intervalMs,
        ...(live ? { running: () => live.home.signing() } : {}),
      },
      log,
    );
    const stop = () => (live ? live.agent.stop() : agent.stop());
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (live) await live.agent.run(() => agent.beat(), intervalMs);
    else await agent.run();
  });

podOptions(connectionOptions(program.command('release')))
  .description("release a pod's keys (they cool for --reuse-delay before another pod may get them)")
  .addOption(
    flag(
      '--interchange <file>',
      'EIP-3076 slashing protection to hand on with the keys (uploaded first)',
    ),
  )
  .action(async (opts: RawFlags) => {
    const outcome = await releasePod(connectionOf(opts), {
      pod: parsePodName(opts.pod ?? process.env.POD_NAME),
      namespace: parseNamespace(opts.namespace ?? (process.env.POD_NAMESPACE || DEFAULT_NAMESPACE)),
      interchangeFile: opts.interchange === undefined ? undefined : String(opts.interchange),
    });
    const ignored = outcome.protection?.ignored ?? [];
    for (const line of ignoredLines(ignored)) process.stderr.write(`${line}\n`);
    const printed =
      outcome.protection === undefined
        ? outcome.released
        : { ...outcome.released, protection: outcome.protection };
    process.stdout.write(`${JSON.stringify(printed)}\n`);
  });

connectionOptions(program.command('move'))
  .description(
    'move keys between running pods (admin): each leaves --from once its agent deleted it from the VC (pkm agent --keymanager-url)',
  )
  .addOption(flag('--from <pod>', 'the pod the keys leave'))
  .addOption(flag('--to <pod>', 'the pod they go to'))
  .addOption(flag('--count <n>', 'how many keys'))
  .addOption(flag('--namespace <name>', "both pods' namespace", DEFAULT_NAMESPACE))
  .addOption(flag('--wait <duration>', 'wait until the keys left --from, e.g. 5m'))
  .action(async (opts: RawFlags) => {
    const namespace = parseNamespace(opts.namespace ?? DEFAULT_NAMESPACE);
    const count = parseInteger(String(opts.count ?? ''), 'count', 1, 10_000, '2');
    const api = connectionOf(opts);
    const moved = await requestMove(api, {
      from: { namespace, name: parsePodName(opts.from) },
      to: { namespace, name: parsePodName(opts.to) },
      count,
    });
    const wait = opts.wait === undefined ? undefined : parseDuration(String(opts.wait), 'wait');
    const arrival = wait === undefined ? {} : await waitForMoves(api, [moved], wait);
    process.stdout.write(`${JSON.stringify({ ...moved, ...arrival })}\n`);
  });

connectionOptions(program.command('rebalance'))
  .description(
    'even the keys out over running pods (admin): --selector names them, comma-separated, "*" for any run of characters (e.g. validator-*); a plain name selects a pod even without keys',
  )
  .addOption(flag('--selector <pods>', 'e.g. "validator-*" or "validator-*,validator-9"'))
  .addOption(flag('--wait <duration>', 'wait until the keys left their old pods, e.g. 5m'))
  .action(async (opts: RawFlags) => {
    if (opts.selector === undefined || opts.selector === '')
      throw new PkmError('INVALID_CONFIG', '--selector is required, e.g. --selector "validator-*"');
    const api = connectionOf(opts);
    const planned = await requestRebalance(api, String(opts.selector));
    const wait = opts.wait === undefined ? undefined : parseDuration(String(opts.wait), 'wait');
    const arrival = wait === undefined ? {} : await waitForMoves(api, planned.moves, wait);
    process.stdout.write(`${JSON.stringify({ ...planned, ...arrival })}\n`);
  });

connectionOptions(program.command('assignments'))
  .description('show which pod holds which public keys')
  .addOption(flag('--json', 'print the JSON the server returns'))
  .action(async (opts: RawFlags) => {
    const answer = await callServer(connectionOf(opts), 'GET', pathTo(ROUTES.assignments, {}));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      return;
    }
    const parsed = AssignmentsAnswer.safeParse(answer);
    if (!parsed.success) throw new PkmError('SERVER_FAILED', 'the server answered no assignments');
    const { counts, pods } = parsed.data;
    const lines = Object.entries(counts).map(([state, n]) => `${state.padEnd(10)} ${n}`);
    lines.push('');
    for (const [pod, keys] of Object.entries(pods))
      lines.push(`${pod}\t${keys.length}\t${keys.join(' ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  });

const keys = program.command('keys').description('keys: retire one, import keystores');
addKeysImportCommand(keys);
connectionOptions(keys.command('retire'))
  .description('retire a key: it is never handed out again (exited, slashed, or by choice)')
  .argument('<pubkey>', '0x and 96 hex digits')
  .addOption(flag('--reason <text>', 'why, for the audit log'))
  .action(async (pubkey: string, opts: RawFlags) => {
    const connection = connectionOf(opts);
    if (!PUBKEY_ANY_CASE.test(pubkey)) {
      throw new PkmError('INVALID_PUBKEY', `${pubkey} is not a pubkey: 0x and 96 hex digits`);
    }
    const body = opts.reason === undefined ? {} : { reason: String(opts.reason) };
    const answer = await callServer(
      connection,
      'POST',
      pathTo(ROUTES.retireKey, { pubkey: pubkey.toLowerCase() }),
      body,
    );
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });

connectionOptions(program.command('status'))
  .description('counts, pool health, conflicts and the last deposits of a running server')
  .addOption(flag('--json', 'print the JSON the server returns'))
  .action(async (opts: RawFlags) => {
    const answer = await callServer(connectionOf(opts), 'GET', pathTo(ROUTES.status, {}));
    process.stdout.write(opts.json ? `${JSON.stringify(answer, null, 2)}\n` : statusText(answer));
  });

const deposits = program.command('deposits').description('deposit data of the keys in a store');
const exporting: StoreNeeds = { kek: false, access: 'read' };
addStoreOptions(
  deposits
    .command('export')
    .description(
      "write deposit_data.json (launchpad format) from a stopped server's LevelDB store, or from a PostgreSQL --store (one snapshot, while servers may run)",
    ),
  exporting,
)
  .addOption(flag('--out <file>', 'where to write deposit_data.json', 'deposit_data.json'))
  .addOption(flag('--pod <name>', 'only the keys this pod holds'))
  .addOption(flag('--state <state>', 'only keys in this state (free, allocated, depositing, ...)'))
  .action(async (opts: RawFlags) => {
    const state = opts.state === undefined ? undefined : StoredState.safeParse(opts.state);
    if (state && !state.success) {
      throw new PkmError(
        'INVALID_CONFIG',
        `--state is one of ${StoredState.options.join(', ')}, e.g. --state allocated`,
      );
    }
    const filter = {
      ...(opts.pod === undefined ? {} : { pod: parsePodName(opts.pod) }),
      ...(state?.success ? { state: state.data } : {}),
    };
    const open = await prepareCommandStore(opts, exporting);
    const store = await open();
    try {
      const entries = await readConsistently(store, (view) => depositEntries(view, filter));
      await writePrivateFile(String(opts.out), `${JSON.stringify(entries, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify({ out: opts.out, deposits: entries.length })}\n`);
    } finally {
      await store.close();
    }
  });

const exits = program.command('exits').description('signed voluntary exits (EIP-7044)');
connectionOptions(exits.command('export'))
  .description(
    "write a signed voluntary exit per key (all keys, or --pod's) as <out>/<0xpubkey>.json, the beacon API's SignedVoluntaryExit; valid for good (EIP-7044): keep them as safe as keys",
  )
  .addOption(flag('--out <dir>', 'folder to write the exits to (made 0700)'))
  .addOption(flag('--pod <name>', "only this pod's keys"))
  .addOption(flag('--namespace <name>', "the pod's namespace (default: default)"))
  .addOption(
    flag(
      '--epoch <n>',
      'earliest epoch the exits may be processed at; 0 is valid at any epoch (process_voluntary_exit asserts current_epoch >= epoch)',
      '0',
    ),
  )
  .addOption(
    flag(
      '--index <pubkey=index>',
      "a key's validator index, where the server has no --beacon-url to look it up (repeatable)",
    ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
  )
  .action(async (opts: RawFlags) => {
    if (opts.out === undefined)
      throw new PkmError('INVALID_CONFIG', '--out is required, e.g. --out ./exits');
    const epoch = String(opts.epoch ?? '0');
    if (!/^(0|[1-9][0-9]{0,19})$/.test(epoch) || BigInt(epoch) >= 2n ** 64n)
      throw new PkmError(
        'INVALID_CONFIG',
        `--epoch takes a uint64 in decimal, not "${epoch}", e.g. --epoch 0`,
      );
    const indices = Array.isArray(opts.index) ? opts.index.map(String) : [];
    const outcome = await exportExits(connectionOf(opts), {
      out: String(opts.out),
      ...(opts.pod === undefined
        ? {}
        : {
            pod: {
              name: parsePodName(opts.pod),
              ...(opts.namespace === undefined
                ? {}
                : { namespace: parseNamespace(opts.namespace) }),
            },
          }),
      epoch,
      indices: parseIndices(indices),
    });
    for (const pk of outcome.skipped)
      process.stderr.write(`pkm: ${pk}: retired or without its secret on the server: no exit\n`);
    for (const pk of outcome.noIndex)
      process.stderr.write(`pkm: ${pk}: no validator index known: pass --index ${pk}=N\n`);
    process.stdout.write(
      `${JSON.stringify({ out: outcome.out, written: outcome.written.length, noIndex: outcome.noIndex, skipped: outcome.skipped })}\n`,
    );
    if (outcome.noIndex.length > 0)
      throw new PkmError(
        'VALIDATOR_INDEX_UNKNOWN',
        `${outcome.noIndex.length} key(s) without a known validator index; the other ${outcome.written.length} exit(s) were written`,
      );
  });

addDbCommands(program);

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok =
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help';
      process.exit(ok ? ExitCode.ok : ExitCode.usage);
    }
    const e = toPkmError(err);
    process.stderr.write(`pkm: ${e.code}: ${e.message}\n`);
    if (e.code === 'INTERNAL' && parseLogLevel(process.env.PKM_LOG_LEVEL) === 'debug')
      console.error(err);
    process.exit(e.exitCode);
  }
}

await main();
