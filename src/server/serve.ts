// The server's composition root: open the store, build the domain and the app, listen, and
// shut down cleanly on SIGTERM (stop taking requests, finish those in flight, close the store).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Allocator } from '../allocation/allocator.js';
import { type Clock, systemClock } from '../allocation/clock.js';
import { stateCounts } from '../allocation/counts.js';
import { readSecretFile, type ServerConfig } from '../config.js';
import { type DepositConfig, type DepositRecord, makeDeposit } from '../deposit/deposit-data.js';
import { PkmError } from '../errors.js';
import { MnemonicKeys } from '../keys/mnemonic.js';
import { type KeySource, mnemonicKeySource, type NewKey, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import { Store } from '../store/store.js';
import { createApp } from './app.js';
import { createMetrics } from './metrics.js';

function depositMaker(config: DepositConfig) {
  return (key: NewKey): DepositRecord => makeDeposit(key, config);
}

export interface ServiceDeps {
  readonly store: Store;
  readonly config: Pick<ServerConfig, 'reuseDelayMs' | 'maxKeysPerPod' | 'maxTotalKeys'>;
  readonly log: Logger;
  readonly clock?: Clock;
  readonly keySource?: KeySource;
  readonly deposits?: DepositConfig;
  readonly isDraining?: () => boolean;
}

/** Wires store, allocator, metrics and app together; tests call this over a temp store. */
export function composeApp(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const { reuseDelayMs } = deps.config;
  const metrics = createMetrics({
    counts: () => stateCounts(deps.store, clock(), reuseDelayMs),
    pods: () => deps.store.storedCounts().pods,
  });
  const allocator = new Allocator({
    store: deps.store,
    clock,
    keySource: deps.keySource ?? randomKeySource,
    ...(deps.deposits ? { makeDeposit: depositMaker(deps.deposits) } : {}),
    config: deps.config,
    onAllocated: (o) => metrics.onAllocated(o),
    onReleased: (pod, n) => metrics.onReleased(pod, n),
  });
  const app = createApp({
    store: deps.store,
    allocator,
    clock,
    log: deps.log,
    metrics,
    reuseDelayMs,
    ...(deps.isDraining ? { isDraining: deps.isDraining } : {}),
  });
  return { app, allocator, metrics };
}

export interface RunningServer {
  readonly url: string;
  /** Stops accepting, waits for requests in flight (up to graceMs), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

/** Random keys, or keys derived from --mnemonic-file (and its optional passphrase file). */
async function keySourceFor(config: ServerConfig): Promise<KeySource> {
  if (config.mnemonicFile === undefined) {
    if (config.mnemonicPassphraseFile !== undefined) {
      throw new PkmError(
        'INVALID_CONFIG',
        '--mnemonic-passphrase-file needs --mnemonic-file, e.g. --mnemonic-file /etc/pkm/mnemonic',
      );
    }
    return randomKeySource;
  }
  const mnemonic = await readSecretFile(config.mnemonicFile, 'mnemonic-file');
  const passphrase =
    config.mnemonicPassphraseFile === undefined
      ? ''
      : await readSecretFile(config.mnemonicPassphraseFile, 'mnemonic-passphrase-file');
  return mnemonicKeySource(new MnemonicKeys(mnemonic, passphrase));
}

export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  const keySource = await keySourceFor(config);
  const store = await Store.open(config.dataDir);
  let draining = false;
  try {
    await store.bindKeySource(keySource.fingerprint);
  } catch (err) {
    await store.close();
    throw err;
  }
  if (config.deposits?.mode === 'send') {
    await store.close();
    throw new PkmError(
      'INVALID_CONFIG',
      '--deposit-mode send is not available in this build yet; use --deposit-mode record',
    );
  }
  const { app } = composeApp({
    store,
    config,
    log,
    keySource,
    isDraining: () => draining,
    ...(config.deposits ? { deposits: config.deposits } : {}),
  });
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.listen.port, config.listen.host, (err?: Error) =>
        err ? reject(err) : resolve(s),
      );
    });
  } catch (err) {
    await store.close();
    const reason = err instanceof Error ? err.message : String(err);
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot listen on --listen ${config.listen.host}:${config.listen.port}: ${reason}`,
    );
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  const keys = keySource.indexed ? 'mnemonic' : 'random';
  log.info({ url, dataDir: config.dataDir, keys, counts: store.storedCounts() }, 'listening');
  log.flush();
  return {
    url,
    async close(graceMs = 10_000) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(force);
      await store.close();
      log.info('stopped');
      log.flush();
    },
  };
}
