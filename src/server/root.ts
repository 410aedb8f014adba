// The composition root of `pkm server`: the one place that builds the service from its parts
// and the one teardown that stops them. startServer opens the store, starts the parts, listens,
// and on close (SIGTERM) stops taking requests, finishes those in flight, stops the depositor
// and closes the store. composeApp wires store, allocator, metrics and app; tests and benchmarks
// call it over a temp store, with an injected clock and port 0.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Allocator } from '../allocation/allocator.js';
import { stateCounts } from '../allocation/counts.js';
import type { Depositor } from '../allocation/depositor.js';
import { GroupCommitter } from '../allocation/group-commit.js';
import { KeyMoves } from '../allocation/moves.js';
import type { BeaconChain } from '../allocation/protection.js';
import type { BeaconGate } from '../beacon/liveness.js';
import { type Clock, type Monotonic, systemClock, systemMonotonic } from '../clock.js';
import type { DepositConfig } from '../deposit/deposit-data.js';
import type { DepositRecord } from '../deposit/deposit-record.js';
import { type ExitChain, exitChainOf } from '../deposit/exit-chain.js';
import { messageOf, PkmError } from '../errors.js';
import type { NewKey } from '../keys/bls.js';
import { ProofVerifier } from '../keys/proof-verifier.js';
import { type KeySource, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import type { StoreContract } from '../store/contract.js';
import { allocatorAlerts } from './alerts.js';
import { allocationShortcut } from './allocation-shortcut.js';
import { type AppDeps, createApp } from './app.js';
import { Auth } from './auth.js';
import { openAuth } from './auth-setup.js';
import type { ServerConfig } from './config.js';
import { whileLeader } from './leader-work.js';
import { createMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { keySourceFor, livenessGate, prepareStore, warnAboutChain } from './startup.js';
import { StoreProbe } from './store-probe.js';
import { openServerStore, prepareStoreOpen } from './store-setup.js';
import { Teardown } from './teardown.js';
import { checkTlsFiles, createTlsServer } from './tls.js';

export interface RunningServer {
  readonly url: string;
  /** Stops accepting, waits for requests in flight (up to graceMs), then closes the store. */
  close(graceMs?: number): Promise<void>;
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
  const opening = await prepareStoreOpen(config);

  const teardown = new Teardown();
  let draining = false;
  let graceMs = 10_000;
  const started = await teardown.guard(async () => {
    const { store, where, ping } = await openServerStore(
      opening,
      config,
      log,
      !benchmarkOnly.unsyncedStore,
    );
    teardown.push(() => store.close());
    const probe = ping && new StoreProbe(ping, log);
    if (probe) {
      probe.start();
      teardown.push(() => probe.stop());
    }
    if (benchmarkOnly.unsyncedStore)
      log.warn(
        'store commits are not synced (a benchmark): a power loss may undo acknowledged changes',
      );
    // The one writer of this store: allocator, depositor, rotation and routes all share it.
    const group = GroupCommitter.of(store);
    const leadership = store.leadership();
    const { storedRoot, restoredAt } = await prepareStore(store, group, config, keySource, log);

    const { deposits } = config;
    let depositor: Depositor | undefined;
    if (deposits?.send) {
      const parts = { store, group, keySource, clock: store.clock, log };
      const sending = { ...deposits, send: deposits.send };
      const { openDepositor } = await import('./depositor-setup.js');
      const opened = await openDepositor(sending, parts, deposits.send.reconcileMs);
      teardown.push(() => opened.stop());
      depositor = opened;
    }
    warnAboutChain(config, auth, storedRoot, log);
    const exitChain = exitChainOf(config.network);
    const { listener, allocator, metrics, proofs } = composeApp({
      auth,
      rateLimitPerMinute: config.rateLimitPerMinute,
      webhookClientCert: config.auth.webhookClientCa !== undefined,
      ...(liveness ? { liveness } : {}),
      store,
      ...(probe ? { storeHealth: () => probe.notReady() } : {}),
      config,
      log,
      keySource,
      group,
      // The store's clock: on a shared store the database's, which every server agrees on.
      clock: store.clock,
      bootToken: await store.bootToken(),
      ...(restoredAt === undefined ? {} : { restored: true }),
      isDraining: () => draining,
      ...(deposits ? { deposits: { ...deposits, make: await depositMaker(deposits) } } : {}),
      ...(depositor ? { depositor } : {}),
      ...(exitChain ? { exitChain } : {}),
      beacon: {
        genesisTime: config.network?.genesisTime,
        genesisValidatorsRoot: config.genesisValidatorsRoot,
      },
    });
    teardown.push(() => proofs.close());

    const server = await listen(config, tlsFiles, listener, log, teardown, () => graceMs);
    group.followConnections(server);
    if (config.kube) {
      const { kube } = config;
      // Loaded only with --kube: the Kubernetes client takes about a second to load (issue 17).
      const { loadKubeConfig, PodWatcher } = await import('../kube/watcher.js');
      const stopWatching = await whileLeader(leadership, 'pod watcher', log, async () => {
        const watcher = new PodWatcher(
          loadKubeConfig(kube.kubeconfig),
          { ...kube, namespaces: config.namespaces },
          {
            store,
            allocator,
            monotonic: systemMonotonic,
            log,
            onResync: () => metrics.onWatcherResync(),
          },
        );
        try {
          await watcher.start();
        } catch (err) {
          await watcher.stop();
          throw new PkmError('INVALID_CONFIG', `--kube: cannot list pods: ${messageOf(err)}`, {
            cause: err,
          });
        }
        return () => watcher.stop();
      });
      teardown.push(stopWatching);
    }
    // Several servers (PostgreSQL): campaign for the once-only work begun above on election.
    leadership.start();
    teardown.push(() => leadership.stop());
    return { server, store, where };
  });
  const { server, store, where } = started;
  const url = urlOf(server, config.tls !== undefined);
  const keys = keySource.indexed ? 'mnemonic' : 'random';
  log.info({ url, store: where, keys, counts: store.storedCounts() }, 'listening');
  log.flush();
  return {
    url,
    async close(grace = 10_000) {
      draining = true;
      graceMs = grace;
      await teardown.run();
      log.info('stopped');
      log.flush();
    },
  };
}

/**
 * Listens on --listen (HTTPS with certificates that reload when their files change). Its
 * teardown step stops taking connections, waits for requests in flight up to the grace period,
 * then closes what is left.
 */
async function listen(
  config: ServerConfig,
  tlsFiles: Parameters<typeof createTlsServer>[0] | undefined,
  app: RequestListener,
  log: Logger,
  teardown: Teardown,
  graceMs: () => number,
): Promise<Server> {
  try {
    const tlsServer = tlsFiles ? await createTlsServer(tlsFiles, app, log) : undefined;
    if (tlsServer) teardown.push(() => tlsServer.stop());
    const server = tlsServer?.server ?? createHttpServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => resolve());
    });
    teardown.push(async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const force = setTimeout(() => server.closeAllConnections(), graceMs());
      await closed;
      clearTimeout(force);
    });
    return server;
  } catch (err) {
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot listen on --listen ${config.listen.host}:${config.listen.port}: ${messageOf(err)}`,
    );
  }
}

function urlOf(server: Server, tls: boolean): string {
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new PkmError('INTERNAL', 'the server listens on no TCP port');
  const { address: ip, port }: AddressInfo = address;
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return `${tls ? 'https' : 'http'}://${host}:${port}`;
}

/**
 * Deposit data for new keys under `config`. Its code (SSZ, signing) is loaded only when deposits
 * are configured: a server without them starts without it (issue 17, point 5).
 */
async function depositMaker(config: DepositConfig): Promise<DepositMaker> {
  const { makeDeposit } = await import('../deposit/deposit-data.js');
  return (key) => makeDeposit(key, config);
}

type DepositMaker = (key: NewKey) => DepositRecord;

export interface ServiceDeps {
  readonly store: StoreContract;
  /** Why the store cannot serve now (a database away), for /readyz; absent: always can. */
  readonly storeHealth?: () => string | undefined;
  readonly config: Pick<ServerConfig, 'reuseDelayMs' | 'maxKeysPerPod' | 'maxTotalKeys'> &
    Partial<
      Pick<ServerConfig, 'namespaces' | 'resyncWindowMs' | 'derivationLookahead' | 'newKeys'>
    >;
  readonly log: Logger;
  readonly clock?: Clock;
  readonly monotonic?: Monotonic;
  /** The store was restored from a backup and its hold has not passed (backup.ts). */
  readonly restored?: boolean;
  readonly keySource?: KeySource;
  /** Deposits (--network and the rest): what they are, and the maker of each new key's. */
  readonly deposits?: DepositConfig & { readonly make: DepositMaker };
  /** The beacon chain's genesis, for slashing-protection fences (default: --network's). */
  readonly beacon?: BeaconChain;
  /** The liveness gate (--beacon-url). */
  readonly liveness?: BeaconGate;
  /** Send mode: shares `group` with the allocator. */
  readonly depositor?: Depositor;
  /** The one writer of the store, shared by everything that changes it. */
  readonly group: GroupCommitter;
  /** What heartbeats are answered with (StoreContract.bootToken); default: a new one. */
  readonly bootToken?: string;
  readonly isDraining?: () => boolean;
  readonly auth?: Auth;
  /** Allocation requests per minute per caller (--rate-limit). */
  readonly rateLimitPerMinute?: number;
  readonly webhookClientCert?: boolean;
  /** What voluntary exits are signed over (--network's Capella fork version and root). */
  readonly exitChain?: ExitChain;
}

/** Wires store, allocator, metrics and app together; tests call this over a temp store. */
export function composeApp(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const { reuseDelayMs } = deps.config;
  const { depositor } = deps;
  const metrics = createMetrics({
    counts: async () =>
      deps.store.isOpen ? stateCounts(deps.store, clock(), reuseDelayMs) : undefined,
    pods: () => deps.store.storedCounts().pods,
    funderBalanceWei: () => depositor?.balance,
  });
  depositor?.onOutcome((outcome) => metrics.onDeposit(outcome));
  const { group } = deps;
  const allocator = new Allocator({
    store: deps.store,
    group,
    monotonic: deps.monotonic ?? systemMonotonic,
    ...(deps.restored ? { restored: true } : {}),
    ...(deps.config.derivationLookahead === undefined
      ? {}
      : { lookahead: deps.config.derivationLookahead }),
    ...beaconOf(deps),
    ...(depositor ? { depositor } : {}),
    clock,
    keySource: deps.keySource ?? randomKeySource,
    ...(deps.deposits ? { makeDeposit: deps.deposits.make } : {}),
    config: deps.config,
    ...allocatorAlerts(metrics, deps.log),
    resyncWindowMs: deps.config.resyncWindowMs ?? 0,
    ...(deps.liveness ? { liveness: deps.liveness } : {}),
  });
  const moves = new KeyMoves({
    store: deps.store,
    group,
    clock,
    allocator,
    ...beaconOf(deps),
    ...(deps.liveness ? { liveness: deps.liveness } : {}),
  });
  const heartbeats = new Map<string, number>();
  const proofs = new ProofVerifier();
  // One Auth and one rate limiter for the express app and the allocation's shortcut past it.
  const auth = deps.auth ?? new Auth({ adminTokens: [] });
  const appDeps: AppDeps = {
    proofs,
    bootToken: deps.bootToken ?? randomBytes(16).toString('hex'),
    heartbeats,
    store: deps.store,
    allocator,
    moves,
    clock,
    log: deps.log,
    metrics,
    reuseDelayMs,
    namespaces: deps.config.namespaces ?? [],
    maxTotalKeys: deps.config.maxTotalKeys,
    newKeys: deps.config.newKeys ?? 'always',
    group,
    auth,
    ...(deps.webhookClientCert ? { webhookClientCert: true } : {}),
    ...(deps.exitChain ? { exitChain: deps.exitChain } : {}),
    ...(deps.liveness ? { liveness: deps.liveness } : {}),
    ...(deps.rateLimitPerMinute
      ? { rateLimiter: new RateLimiter({ perMinute: deps.rateLimitPerMinute }, clock) }
      : {}),
    ...(deps.isDraining ? { isDraining: deps.isDraining } : {}),
    ...(deps.storeHealth ? { storeHealth: deps.storeHealth } : {}),
    ...(depositor && deps.deposits
      ? { funds: fundsCheck(depositor, deps.deposits.amountGwei) }
      : {}),
  };
  const app = createApp(appDeps);
  // What servers listen with: plain allocations past express, everything else through it.
  const listener = allocationShortcut({ ...appDeps, auth }, app);
  return { app, listener, allocator, moves, metrics, heartbeats, proofs };
}

/** /readyz fails while the funder cannot pay for one more deposit. */
function fundsCheck(depositor: Depositor, amountGwei: number): () => string | undefined {
  return () => {
    const balance = depositor.balance;
    if (balance === undefined || balance >= BigInt(amountGwei) * 10n ** 9n) return undefined;
    return `the funder holds ${balance} wei, less than one deposit`;
  };
}

function beaconOf(deps: ServiceDeps): { beacon?: BeaconChain } {
  const beacon = deps.beacon ?? deps.deposits?.network;
  return beacon ? { beacon } : {};
}
