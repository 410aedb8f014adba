// `pkm server`: open the store, start the parts, listen; and shut down cleanly on SIGTERM
// (stop taking requests, finish those in flight, stop the depositor, close the store).
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GroupCommitter } from '../allocation/group-commit.js';
import { checkConfiguredRoot } from '../allocation/protection.js';
import { BeaconLivenessGate } from '../beacon/liveness.js';
import { systemClock, systemMonotonic } from '../clock.js';
import type { Depositor } from '../deposit/depositor.js';
import { openDepositor } from '../deposit/setup.js';
import { PkmError } from '../errors.js';
import { readSecretFile } from '../files.js';
import { MnemonicKeys } from '../keys/bip39.js';
import { type KeySource, mnemonicKeySource, randomKeySource } from '../keys/source.js';
import { loadKubeConfig, PodWatcher } from '../kube/watcher.js';
import type { Logger } from '../log.js';
import { MetaKey } from '../store/buckets.js';
import { kekLoader } from '../store/encryption.js';
import { finishRotation } from '../store/kek-rotation.js';
import { resealPlaintext } from '../store/reseal.js';
import { Store } from '../store/store.js';
import type { Auth } from './auth.js';
import { openAuth } from './auth-setup.js';
import { composeApp } from './compose.js';
import type { ServerConfig } from './config.js';
import { checkTlsFiles, createTlsServer, type ReloadingTlsServer } from './tls.js';

/**
 * --beacon-url: the liveness gate, its node checked before anything else starts.
 * - A node of another network than --network refuses the start (INVALID_CONFIG, exit 2): the
 *   flag is wrong, and the gate could never open.
 * - A node that does not answer, is syncing, optimistic or without its execution client, or
 *   lacks the liveness route, does not: the server starts with the gate closed, and the gate
 *   checks again at each use (503 BEACON_UNAVAILABLE until then). Only a move of a cooled key
 *   to another pod needs the gate; pods taking back their own keys and new keys do not, and a
 *   beacon node restarted with the cluster often takes minutes to sync. Refusing would turn
 *   that into a crash loop that also keeps every pod from its own keys. The warning says why
 *   the gate is closed.
 */
async function livenessGate(
  config: ServerConfig,
  log: Logger,
): Promise<BeaconLivenessGate | undefined> {
  if (config.liveness === undefined) return undefined;
  const { beaconUrl, network } = config.liveness;
  const gate = new BeaconLivenessGate(beaconUrl, network);
  const started = await gate.start(systemClock());
  if (started.ready) log.info({ beaconUrl: gate.url, network: network.name }, 'beacon node ready');
  else
    log.warn(
      { beaconUrl: gate.url, reason: started.reason },
      'liveness gate closed until the beacon node is ready: cooled keys do not move to other pods meanwhile',
    );
  return gate;
}

/** What an operator must know at every start about the chain the server was told of. */
function warnAboutChain(
  config: ServerConfig,
  auth: Auth,
  storedRoot: string | undefined,
  log: Logger,
): void {
  if (config.network !== undefined && config.deposits === undefined)
    log.warn(
      { network: config.network.name },
      '--network without withdrawal credentials: new keys carry no deposit data (pass --withdrawal-address, or --mnemonic-file for 0x00)',
    );
  // Without authentication the first upload fixes the root (README "Slashing protection").
  if (!auth.enabled || config.genesisValidatorsRoot !== undefined || storedRoot !== undefined)
    return;
  log.warn(
    'the genesis_validators_root is unknown: pods cannot upload slashing protection (GENESIS_ROOT_UNKNOWN), so pkm release --interchange releases nothing; set --network, or --genesis-validators-root, or upload once with an admin token',
  );
}

export interface RunningServer {
  readonly url: string;
  /** Stops accepting, waits for requests in flight (up to graceMs), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

/** Random keys, or keys derived from --mnemonic-file (and its optional passphrase file). */
async function keySourceFor(config: ServerConfig): Promise<KeySource> {
  if (config.mnemonic === undefined) return randomKeySource;
  const { file, passphraseFile } = config.mnemonic;
  const mnemonic = await readSecretFile(file, 'mnemonic-file');
  const passphrase =
    passphraseFile === undefined
      ? ''
      : await readSecretFile(passphraseFile, 'mnemonic-passphrase-file');
  return mnemonicKeySource(new MnemonicKeys(mnemonic, passphrase));
}

/** For benchmarks only (bench/unsynced-server.ts): `pkm server` never passes these. */
export interface BenchmarkOnlyOptions {
  /**
   * Commits without syncing (StoreOptions.sync false), to measure what syncing costs. A power
   * loss may then undo acknowledged changes, against DESIGN.md ("Key lifecycle").
   */
  readonly unsyncedStore?: boolean;
}

export async function startServer(
  config: ServerConfig,
  log: Logger,
  benchmarkOnly: BenchmarkOnlyOptions = {},
): Promise<RunningServer> {
  // Every flag and file is checked before the store is opened (or made): bad input changes nothing.
  const keySource = await keySourceFor(config);
  const liveness = await livenessGate(config, log);
  const auth = await openAuth(config, log);
  const tlsFiles = config.tls && { ...config.tls, clientCaFile: config.auth.webhookClientCa };
  if (tlsFiles) await checkTlsFiles(tlsFiles);
  const store = await Store.open(config.dataDir, {
    kek: kekLoader(config.dataDir, config.kekFile, () =>
      log.warn(
        { kekFile: `${config.dataDir}/kek` },
        'made a new KEK next to the data: keep a copy elsewhere, or pass --kek-file',
      ),
    ),
    ...(benchmarkOnly.unsyncedStore ? { sync: false } : {}),
  });
  if (benchmarkOnly.unsyncedStore)
    log.warn(
      'store commits are not synced (a benchmark): a power loss may undo acknowledged changes',
    );
  let draining = false;
  let restoredAt: string | undefined;
  let storedRoot: string | undefined;
  const group = new GroupCommitter(store);
  try {
    // The history in the store was checked against one chain's root: another is refused,
    // before anything is written.
    storedRoot = await store.getMeta(MetaKey.genesisValidatorsRoot);
    checkConfiguredRoot(
      config.genesisValidatorsRoot,
      storedRoot,
      config.network === undefined
        ? '--genesis-validators-root'
        : `--network ${config.network.name}`,
    );
    await store.bindKeySource(keySource.fingerprint);
    const resealed = await resealPlaintext(store);
    if (resealed > 0)
      log.info({ keys: resealed }, 'secrets an older build kept in plaintext are now encrypted');
    // Started with the new KEK of a rotation a crash cut short: finish it before serving.
    const finished = await finishRotation(store, (op) => group.run(op));
    if (finished) log.warn(finished, 'finished an interrupted KEK rotation');
    restoredAt = await store.getMeta(MetaKey.restoredAt);
    if (restoredAt !== undefined)
      log.warn(
        { restoredAt: new Date(Number(restoredAt)).toISOString(), holdMs: config.reuseDelayMs },
        'this store was restored from a backup: no key moves to another pod and none is derived before a full --reuse-delay has passed; holders re-assert meanwhile',
      );
  } catch (err) {
    await store.close();
    throw err;
  }
  let depositor: Depositor | undefined;
  const { deposits } = config;
  if (deposits?.send) {
    try {
      const parts = { store, group, keySource, clock: systemClock, log };
      depositor = await openDepositor(
        { ...deposits, send: deposits.send },
        parts,
        deposits.send.reconcileMs,
      );
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  warnAboutChain(config, auth, storedRoot, log);
  const { app, allocator, metrics, proofs } = composeApp({
    auth,
    rateLimitPerMinute: config.rateLimitPerMinute,
    webhookClientCert: config.auth.webhookClientCa !== undefined,
    ...(liveness ? { liveness } : {}),
    store,
    config,
    log,
    keySource,
    group,
    ...(restoredAt === undefined ? {} : { restored: true }),
    isDraining: () => draining,
    ...(deposits ? { deposits } : {}),
    ...(depositor ? { depositor } : {}),
    beacon: {
      genesisTime: config.network?.genesisTime,
      genesisValidatorsRoot: config.genesisValidatorsRoot,
    },
  });
  let server: Server;
  let tlsServer: ReloadingTlsServer | undefined;
  try {
    tlsServer = tlsFiles ? await createTlsServer(tlsFiles, app, log) : undefined;
    server = tlsServer?.server ?? createHttpServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => resolve());
    });
  } catch (err) {
    tlsServer?.stop();
    depositor?.stop();
    await store.close();
    const reason = err instanceof Error ? err.message : String(err);
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot listen on --listen ${config.listen.host}:${config.listen.port}: ${reason}`,
    );
  }
  let watcher: PodWatcher | undefined;
  if (config.kube) {
    try {
      watcher = new PodWatcher(
        loadKubeConfig(config.kube.kubeconfig),
        { ...config.kube, namespaces: config.namespaces },
        {
          store,
          allocator,
          monotonic: systemMonotonic,
          log,
          onResync: () => metrics.onWatcherResync(),
        },
      );
      await watcher.start();
    } catch (err) {
      await watcher?.stop();
      server.close();
      depositor?.stop();
      await store.close();
      throw new PkmError('INVALID_CONFIG', `--kube: cannot list pods: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  const keys = keySource.indexed ? 'mnemonic' : 'random';
  log.info({ url, dataDir: config.dataDir, keys, counts: store.storedCounts() }, 'listening');
  log.flush();
  return {
    url,
    async close(graceMs = 10_000) {
      draining = true;
      await watcher?.stop();
      tlsServer?.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(force);
      depositor?.stop();
      await proofs.close();
      await store.close();
      log.info('stopped');
      log.flush();
    },
  };
}
